/* QEMU TCG plugin: exact count of guest instructions between two markers.
 *
 * Arguments: begin=<hex addr>,end=<hex addr>,out=<path>. Every executed
 * instruction adds 1 to a counter (an inline add, no callback). The
 * instruction at `begin` snapshots the counter; the one at `end` appends
 * "<count since begin>\n" to `out`. A window is therefore the instructions
 * from the first instruction of the begin marker up to, not including, the
 * first instruction of the end marker; one line per begin/end pair.
 * Single vCPU (Cortex-M), so no locking. Built by firmware_sim/device/icount.py. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;
static uint64_t window_start;
static int window_open;
static uint64_t begin_addr, end_addr;
static FILE *out;

static void on_begin(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    window_start = executed;
    window_open = 1;
}

static void on_end(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    if (window_open) {
        fprintf(out, "%" PRIu64 "\n", executed - window_start);
        fflush(out);
        window_open = 0;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t addr = qemu_plugin_insn_vaddr(insn);
        /* Registered before the inline add, so the snapshot excludes the marker instruction on both ends. */
        if (addr == begin_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (addr == end_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &executed, 1);
    }
}

static void on_qemu_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *out_path = NULL;
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "begin=", 6) == 0) {
            begin_addr = strtoull(argv[i] + 6, NULL, 0);
        } else if (strncmp(argv[i], "end=", 4) == 0) {
            end_addr = strtoull(argv[i] + 4, NULL, 0);
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = argv[i] + 4;
        }
    }
    if (begin_addr == 0 || end_addr == 0 || out_path == NULL) {
        qemu_plugin_outs("edgegru icount plugin: needs begin=,end=,out= arguments\n");
        return 1;
    }
    out = fopen(out_path, "w");
    if (out == NULL) {
        qemu_plugin_outs("edgegru icount plugin: cannot open the out= file\n");
        return 1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
    return 0;
}
