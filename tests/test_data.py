import numpy as np
import pytest

from edgegru.data import DATASETS, load_dataset
from edgegru.data.sources import WATCH_SUBJECTS, WATCH_WINDOW
from edgegru.errors import EdgeGRUError
from tests.conftest import write_npz


# The full synth-kws sets take minutes and 900 MB to generate on a fresh machine; synth-kws-small runs
# the same loader (tests/test_kws_data.py and tests/test_kws_run.py cover the vocabularies and front ends).
QUICK_DATASETS = [name for name in DATASETS if not name.startswith("synth-kws") or name.endswith("-small")]


@pytest.mark.parametrize("name", QUICK_DATASETS)
def test_every_dataset_has_the_uniform_shape(name):
    data = load_dataset(name)
    for split in (data.train, data.val, data.test):
        n, t, f = split.x.shape
        assert split.x.dtype == np.float32 and f == data.num_features and n > 0
        assert split.lengths.shape == (n,) and 1 <= split.lengths.min() and split.lengths.max() <= t
        assert split.y.min() >= 0 and split.y.max() < data.num_classes
        padding = np.arange(t)[None, :] >= split.lengths[:, None]
        assert not split.x[padding].any(), "padding must be zeros"


def test_japanese_vowels_keeps_variable_lengths(japanese_vowels):
    assert japanese_vowels.test.lengths.min() < japanese_vowels.test.lengths.max()
    assert len(japanese_vowels.train) + len(japanese_vowels.val) == 270 and len(japanese_vowels.test) == 370


def test_watch_is_split_by_subject_with_recordings_kept():
    assert not set(WATCH_SUBJECTS["train"]) & set(WATCH_SUBJECTS["test"])
    data = load_dataset("watch")
    assert data.train.x.shape[1:] == (WATCH_WINDOW, 6)
    # windows of different subjects never coincide
    train_rows = {row.tobytes() for row in data.train.x[:, 0]}
    assert not any(row.tobytes() in train_rows for row in data.test.x[:, 0])
    for split in ("val", "test"):
        recordings = data.recordings[split]
        assert len(recordings) == 14 * len(WATCH_SUBJECTS[split])
        assert {r.subject for r in recordings} == set(WATCH_SUBJECTS[split])
        assert all(len(r.signal) >= WATCH_WINDOW and r.signal.shape[1] == 6 for r in recordings)
    # the test windows are cut from the test recordings
    assert any(np.array_equal(data.test.x[0], r.signal[:WATCH_WINDOW]) for r in data.recordings["test"])


def test_normalization_comes_from_the_training_split_only(digits):
    stats = digits.normalization()
    train_pixels = digits.train.x.reshape(-1, 8)
    np.testing.assert_allclose(stats.mean, train_pixels.mean(0), rtol=1e-5, atol=1e-5)
    all_pixels = np.concatenate([digits.train.x, digits.test.x]).reshape(-1, 8)
    assert not np.allclose(stats.mean, all_pixels.mean(0), atol=1e-6)


def test_unknown_dataset_lists_the_available_ones():
    with pytest.raises(EdgeGRUError, match="available: watch, japanese-vowels, basic-motions, digits"):
        load_dataset("mnist")


def test_user_npz_loads(tmp_path):
    rng = np.random.default_rng(0)
    path = write_npz(tmp_path / "mine.npz", X=rng.normal(size=(50, 7, 3)).astype(np.float32),
                     y=rng.integers(0, 3, 50), lengths=rng.integers(1, 8, 50), class_names=np.array(["a", "b", "c"]))
    data = load_dataset(str(path))
    assert data.class_names == ["a", "b", "c"] and data.num_features == 3
    assert len(data.train) + len(data.val) + len(data.test) == 50


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"X": np.zeros((10, 4))}, "missing array"),
        ({"X": np.zeros((10, 4)), "y": np.zeros(10, int)}, r"X must be \[N, T, F\]"),
        ({"X": np.zeros((10, 4, 2)), "y": np.zeros(9, int)}, "one label per sequence"),
        ({"X": np.zeros((10, 4, 2)), "y": np.arange(10) * 0.5}, "integer class ids"),
        ({"X": np.zeros((10, 4, 2)), "y": np.arange(10), "class_names": np.array(["a", "b"])}, "2 class names"),
        ({"X": np.full((10, 4, 2), np.nan), "y": np.zeros(10, int)}, "NaN or inf"),
        ({"X": np.zeros((10, 4, 2)), "y": np.zeros(10, int), "lengths": np.full(10, 9)}, "lengths must lie"),
    ],
)
def test_bad_npz_gives_a_clear_error(tmp_path, arrays, message):
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(EdgeGRUError, match=message):
        load_dataset(str(path))


def test_a_file_that_is_not_npz_is_refused(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_text("hello")
    with pytest.raises(EdgeGRUError, match="not a readable .npz"):
        load_dataset(str(path))
