"""Where a YOLO dataset's images, labels and class names are: ultralytics' layouts.

- a ``data.yaml`` (the file, or a folder holding it) with ``train:``/``val:``/``test:`` (a folder
  of images, a ``.txt`` list of images, or a list of those; relative to ``path:``, itself relative
  to the YAML's folder) and ``names:`` (a list, or a ``0: name`` mapping);
- a folder with ``images/<split>`` and ``labels/<split>`` (the split chosen);
- a folder of images inside an ``images`` tree (``DIR/images/val``), its labels in the same place
  under ``labels``;
- a folder with ``images/`` and ``labels/`` (the whole folder: there is no split to choose).

An image's labels file is its path with the last ``images`` folder replaced by ``labels`` and the
suffix by ``.txt`` (as ultralytics' ``img2label_paths``), or beside the image when there is none.
The YAML is read by the small reader below (top-level keys, scalars, ``[a, b]`` lists and
indented ``- item`` / ``key: value`` blocks), enough for these keys; other keys are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Union

from overfeat_edge.errors import InputError
from overfeat_edge.io import IMAGE_SUFFIXES

SPLITS = ("train", "val", "test")
YamlValue = Union[str, List[str], Dict[str, str]]


def _uncomment(line: str) -> str:
    """The line without a ``#`` comment (a ``#`` inside quotes or a word is kept)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _scalar(v: str) -> str:
    v = v.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


def _value(v: str) -> YamlValue:
    if v.startswith("[") and v.endswith("]"):
        return [_scalar(x) for x in v[1:-1].split(",") if x.strip()]
    if v.startswith("{") and v.endswith("}"):
        return {_scalar(k): _scalar(x) for k, _, x in (p.partition(":") for p in v[1:-1].split(",") if p.strip())}
    return _scalar(v)


def _block(lines: list[str]) -> YamlValue:
    if all(ln.startswith("-") for ln in lines):
        return [_scalar(ln[1:]) for ln in lines]
    if all(":" in ln for ln in lines):
        return {_scalar(k): _scalar(v) for k, _, v in (ln.partition(":") for ln in lines)}
    return ""  # a block this reader does not need (a script, nested mappings)


def read_data_yaml(path: Path) -> dict[str, YamlValue]:
    """The top-level keys of an ultralytics ``data.yaml``."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    out: dict[str, YamlValue] = {}
    key = ""  # the key whose indented block is being read
    block: list[str] = []
    for raw in text.splitlines():
        line = _uncomment(raw).rstrip()
        if not line.strip() or line.strip() == "---":
            continue
        if not line[0].isspace():
            if key:
                out[key] = _block(block)
            k, sep, v = line.partition(":")
            if not sep:
                raise InputError(f"{path}: expected 'key: value' lines, got {line.strip()!r}")
            key, block = ("", []) if v.strip() else (_scalar(k), [])
            if v.strip():
                out[_scalar(k)] = _value(v.strip())
        elif key:
            block.append(line.strip())
    if key:
        out[key] = _block(block)
    return out


def yaml_names(cfg: dict[str, YamlValue], source: Path) -> list[str]:
    """``names:`` as a list (a ``0: a`` mapping must number the classes 0..N-1)."""
    names = cfg.get("names")
    if isinstance(names, dict):
        try:
            index = {int(k): v for k, v in names.items()}
        except ValueError:
            raise InputError(f"{source}: names: keys must be class indices 0, 1, ...") from None
        if sorted(index) != list(range(len(index))):
            raise InputError(f"{source}: names: must number the classes 0..{len(index) - 1}")
        names = [index[i] for i in range(len(index))]
    if not isinstance(names, list) or not names or not all(names):
        raise InputError(f"{source}: needs names: (a list of class names, or 0: name lines)")
    return names


def label_path(image: Path) -> Path:
    """The labels file of ``image``: the last ``images`` folder replaced by ``labels``, ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _entry_images(entry: str, base: Path, source: Path) -> list[Path]:
    p = Path(entry) if Path(entry).is_absolute() else base / entry
    if p.is_dir():
        return images_in(p)
    if p.is_file() and p.suffix == ".txt":  # one image path a line, relative to the list's folder
        lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        return [Path(ln) if Path(ln).is_absolute() else p.parent / ln for ln in lines]
    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
        return [p]
    raise InputError(f"{source}: {entry} ({p}) is not a folder of images, an image list (.txt) or an image")


def yaml_split(yaml: Path, split: str) -> tuple[list[Path], list[str]]:
    """(images, class names) of ``split`` in a ``data.yaml``."""
    cfg = read_data_yaml(yaml)
    names = yaml_names(cfg, yaml)
    root = cfg.get("path")
    base = yaml.parent / root if isinstance(root, str) and root else yaml.parent
    entries = cfg.get(split)
    if not entries:
        have = [s for s in SPLITS if cfg.get(s)]
        raise InputError(f"{yaml}: no '{split}:' split (it has: {', '.join(have) or 'none'}); choose --split")
    if isinstance(entries, dict):
        raise InputError(f"{yaml}: '{split}:' must be a path or a list of paths")
    images = [p for e in ([entries] if isinstance(entries, str) else entries) for p in _entry_images(e, base, yaml)]
    if not images:
        raise InputError(f"{yaml}: '{split}:' holds no images")
    return images, names


def find_yaml(path: Path) -> Path | None:
    """The ``data.yaml`` that describes ``path``: the file itself, or one in the folder with splits."""
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return path
    for name in ("data.yaml", "data.yml"):
        y = path / name
        if y.is_file() and any(k in read_data_yaml(y) for k in SPLITS):
            return y
    return None


def split_folder(root: Path, split: str) -> Path | None:
    """``root/images/<split>`` when ``root`` is laid out by splits (None when it is not)."""
    have = [s for s in SPLITS if (root / "images" / s).is_dir()]
    if not have:
        return None
    if split not in have:
        raise InputError(f"{root}: no images/{split} (it has: {', '.join(f'images/{s}' for s in have)})")
    return root / "images" / split


def names_root(folder: Path) -> Path:
    """The dataset root of a folder inside an ``images`` tree (the folder above ``images``)."""
    for parent in [folder, *folder.parents]:
        if parent.name == "images":
            return parent.parent
    return folder
