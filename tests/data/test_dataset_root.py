"""An explicit ``root`` that does not exist is an error naming it, never a reason to read another copy of the
dataset ($NUMCNN_DATA, the user cache, the system folder) (issue 15, item 8)."""

import pytest

from numcnn.data import MNIST, FashionMNIST


@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_a_missing_root_is_an_error_even_with_copies_elsewhere(cls, tmp_path, monkeypatch, write_fake):
    write_fake(tmp_path / "env" / cls.name, seed=1)
    write_fake(tmp_path / "xdg-cache" / "numcnn" / cls.name, seed=2)
    write_fake(tmp_path / "system", seed=3)
    monkeypatch.setenv("NUMCNN_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(cls, "system_dirs", (str(tmp_path / "system"),))
    assert len(cls()) == 12  # found without a root
    missing = tmp_path / "nonexistent"
    with pytest.raises(FileNotFoundError) as e:
        cls(root=missing)
    assert str(e.value) == f"{cls.__name__}: the dataset folder {missing} does not exist"
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for download in (False, True):
        with pytest.raises(FileNotFoundError, match="is not a folder"):
            cls(root=a_file, download=download)


def test_root_folders_are_where_a_root_is_searched(tmp_path, write_fake):
    assert FashionMNIST.root_folders(tmp_path) == [tmp_path, tmp_path / "fashion-mnist",
                                                   tmp_path / "FashionMNIST" / "raw"]
    write_fake(tmp_path / "MNIST" / "raw", seed=0)
    assert MNIST(root=tmp_path).folder in MNIST.root_folders(tmp_path)
