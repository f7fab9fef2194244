"""Saved results: one ``.npz`` archive per result, read back without executing code.

An archive holds the result's arrays as members ``a0, a1, …`` and one member
``__meta__``: UTF-8 JSON (uint8 bytes) of the form ::

    {"format": "mtlcvx.result", "schema": 1,
     "result": {"$type": "Solution", "fields": {"W": {"$array": "a0"}, ...}}}

JSON holds ``None``, booleans, integers, strings, lists and string-keyed dicts as they
are; finite floats as JSON numbers (``repr`` round-trips float64 exactly). Everything
else is a one-key tagged object: ``{"$array": member}``, ``{"$scalar": member}`` (a NumPy
scalar, stored as a 0-d member), ``{"$float": "nan" | "inf" | "-inf"}``,
``{"$tuple": [...]}``, ``{"$items": [[key, value], ...]}`` (a dict whose keys are not
all plain strings), ``{"$type": name, "fields": {...}}`` (a registered dataclass) and
``{"$type": name, "items": {...}}`` (a registered dict subclass). Only the classes
registered here (the result classes and :class:`~mtlcvx.Certificate`) can be built,
arrays are read with ``allow_pickle=False``, and object arrays are refused on both
sides, so loading never runs code from the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import uuid
import zipfile
import zlib
from typing import Any, ClassVar

import numpy as np

from .exceptions import ArgumentError, ResultFileError

__all__ = ["SCHEMA", "Saved", "load", "record"]

#: Version of the archive layout; :func:`load` refuses any other.
SCHEMA = 1
_FORMAT = "mtlcvx.result"
_META = "__meta__"
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

#: Classes an archive may name: registered by :func:`record` and by subclassing Saved.
_TYPES: dict[str, type] = {}


def record(cls: type) -> type:
    """Class decorator: instances of ``cls`` (a dataclass or a dict subclass) may appear
    inside a saved result."""
    _TYPES[cls.__name__] = cls
    return cls


class Saved:
    """Mixin of the result classes: :meth:`save` writes one ``.npz`` that
    :func:`mtlcvx.load` reads back.

    A subclass is a dataclass; ``_saved`` names the fields written (default: all).
    Fields left out come back as None.
    """

    _saved: ClassVar[tuple[str, ...] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        record(cls)

    def save(self, path: str | os.PathLike[str]) -> pathlib.Path:
        """Write the result to one ``.npz`` file, readable by :func:`mtlcvx.load`.

        The arrays are stored as they are (dtype, shape, every bit); everything else
        (floats exactly, strings, the certificate, ``info``) as JSON metadata with a
        schema version. No pickled objects: loading never executes code.

        Parameters
        ----------
        path : str or path-like
            The file to write, exactly this name (no suffix is added; ``.npz`` is the
            convention). Replaced atomically if it exists.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        ArgumentError
            A field holds something that cannot be saved without pickling (an object
            array, an arbitrary Python object); the message names the field.
        """
        arrays: dict[str, np.ndarray] = {}
        meta = {"format": _FORMAT, "schema": SCHEMA,
                "result": _encode(self, type(self).__name__, arrays)}
        text = json.dumps(meta, allow_nan=False, ensure_ascii=False)
        arrays[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        target = pathlib.Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "xb") as fh:
                np.savez_compressed(fh, **arrays)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target


def _saved_fields(cls: type) -> tuple[str, ...]:
    names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    declared = getattr(cls, "_saved", None)
    return names if declared is None else tuple(declared)


# ---------------------------------------------------------------------------- writing
def _encode(value: Any, where: str, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON, its arrays moved to ``arrays``; ``where`` names it in errors."""
    if value is None or type(value) in (bool, str, int):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        if type(value) is not np.ndarray and not isinstance(value, np.generic):
            raise ArgumentError(f"cannot save {where}: a {type(value).__name__} (an ndarray "
                                "subclass); pass np.asarray(...) instead")
        if value.dtype.hasobject:
            raise ArgumentError(f"cannot save {where}: an object array (dtype "
                                f"{value.dtype}) needs pickling; convert it to numbers or "
                                "strings")
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(value)
        return {"$array" if isinstance(value, np.ndarray) else "$scalar": key}
    if type(value) is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if type(value) is list:
        return [_encode(v, f"{where}[{i}]", arrays) for i, v in enumerate(value)]
    if type(value) is tuple:
        return {"$tuple": [_encode(v, f"{where}[{i}]", arrays) for i, v in enumerate(value)]}
    if type(value) is dict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: _encode(v, f"{where}[{k!r}]", arrays) for k, v in value.items()}
        return {"$items": [[_encode(k, f"{where} key {k!r}", arrays),
                            _encode(v, f"{where}[{k!r}]", arrays)] for k, v in value.items()]}
    cls = type(value)
    if _TYPES.get(cls.__name__) is cls:
        if isinstance(value, dict):
            return {"$type": cls.__name__, "items": _encode(dict(value), where, arrays)}
        return {"$type": cls.__name__,
                "fields": {name: _encode(getattr(value, name), f"{where}.{name}", arrays)
                           for name in _saved_fields(cls)}}
    raise ArgumentError(f"cannot save {where}: a {cls.__name__}; a saved result holds "
                        "arrays, numbers, strings, None, and lists, tuples and dicts of them")


# ---------------------------------------------------------------------------- reading
def load(path: str | os.PathLike[str]) -> Any:
    """Read a result written by ``save``: a Solution, RelationResult, PathResult or CVResult.

    Parameters
    ----------
    path : str or path-like
        A ``.npz`` file written by :meth:`~mtlcvx.Solution.save`,
        :meth:`~mtlcvx.RelationResult.save`, :meth:`~mtlcvx.PathResult.save` or
        :meth:`~mtlcvx.CVResult.save`.

    Returns
    -------
    Solution, RelationResult, PathResult or CVResult
        The class that wrote the file, with equal arrays (dtype, shape and values, bit
        for bit) and equal metadata; the certificate comes back as a
        :class:`~mtlcvx.Certificate`. A loaded :class:`~mtlcvx.CVResult` has no problem
        to :meth:`~mtlcvx.CVResult.refit`.

    Raises
    ------
    ResultFileError
        The file is missing, not a ``.npz`` archive, truncated or corrupt, holds an object
        array (pickled Python objects are never loaded), has malformed JSON metadata, a
        schema version other than this version's, a missing or unreferenced array, or
        an unknown type or field. The message names the file and what is wrong.

    Examples
    --------
    >>> sol.save("run.npz")                       # doctest: +SKIP
    >>> again = mc.load("run.npz")                # doctest: +SKIP
    >>> np.array_equal(again.W, sol.W)            # doctest: +SKIP
    True
    """
    path = pathlib.Path(path)

    def bad(what: str) -> ResultFileError:
        return ResultFileError(f"{path}: {what}")

    if not path.is_file():
        raise bad("no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise bad(f"not a .npz archive written by save() ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise bad("holds a single .npy array, not a result archive written by save()")
    with archive:
        members: dict[str, np.ndarray] = {}
        for name in archive.files:
            try:
                members[name] = archive[name]
            except ValueError as exc:
                if "pickle" in str(exc):
                    raise bad(f"member {name!r} is an object array (pickled Python "
                              "objects); loading it could run code, refused") from None
                raise bad(f"member {name!r} is corrupt ({exc})") from None
            except (OSError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as exc:
                raise bad(f"member {name!r} is truncated or corrupt ({exc})") from None
    meta_bytes = members.pop(_META, None)
    if meta_bytes is None:
        raise bad(f"no {_META!r} member: not a result written by save()")
    if meta_bytes.dtype != np.uint8 or meta_bytes.ndim != 1:
        raise bad(f"member {_META!r} is not UTF-8 bytes")
    try:
        meta = json.loads(meta_bytes.tobytes().decode("utf-8"),
                          parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(f"the metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise bad(f"the metadata does not say format {_FORMAT!r}: not a result written "
                  "by save()")
    schema = meta.get("schema")
    if schema != SCHEMA or type(schema) is not int:
        raise bad(f"schema version {schema!r}; this version of mtlcvx reads schema "
                  f"{SCHEMA} only" + (" (the file was written by a newer mtlcvx)"
                                      if type(schema) is int and schema > SCHEMA else ""))
    reader = _Reader(members, bad)
    result = reader.value(meta.get("result"), "result")
    if not isinstance(result, Saved):
        raise bad(f"the metadata's result is a {type(result).__name__}, not a result class")
    unused = sorted(set(members) - reader.used)
    if unused:
        raise bad(f"member(s) {', '.join(map(repr, unused))} are not referenced by the "
                  "metadata (the file was altered)")
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (non-finite floats are written as $float)")


class _Reader:
    """Builds values from the metadata, checking every tag, type and field."""

    def __init__(self, members: dict[str, np.ndarray], bad: Any):
        self.members = members
        self.bad = bad
        self.used: set[str] = set()

    def member(self, key: Any, where: str) -> np.ndarray:
        if not isinstance(key, str) or key not in self.members:
            raise self.bad(f"{where} refers to array {key!r}, which is missing from the "
                           "archive (truncated or altered)")
        self.used.add(key)
        return self.members[key]

    def value(self, node: Any, where: str) -> Any:
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is list:
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if type(node) is not dict:
            raise self.bad(f"{where}: unexpected JSON {type(node).__name__}")
        tag = next((k for k in node if k.startswith("$")), None)
        if tag is None:
            return {k: self.value(v, f"{where}[{k!r}]") for k, v in node.items()}
        body = node[tag]
        if tag == "$type":
            return self.instance(node, where)
        if len(node) != 1:
            raise self.bad(f"{where}: tag {tag!r} with extra keys {sorted(node)}")
        if tag == "$array":
            return self.member(body, where)
        if tag == "$scalar":
            arr = self.member(body, where)
            if arr.ndim != 0:
                raise self.bad(f"{where}: scalar member {body!r} has shape {arr.shape}")
            return arr[()]
        if tag == "$float" and body in _FLOATS:
            return _FLOATS[body]
        if tag == "$tuple" and type(body) is list:
            return tuple(self.value(v, f"{where}[{i}]") for i, v in enumerate(body))
        if tag == "$items" and type(body) is list and all(
                type(kv) is list and len(kv) == 2 for kv in body):
            return {self.value(k, f"{where} key"): self.value(v, f"{where}[{i}]")
                    for i, (k, v) in enumerate(body)}
        raise self.bad(f"{where}: malformed {tag!r} entry {body!r}")

    def instance(self, node: dict[str, Any], where: str) -> Any:
        name = node["$type"]
        cls = _TYPES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise self.bad(f"{where}: unknown type {name!r} (known: {', '.join(sorted(_TYPES))})")
        if issubclass(cls, dict):
            if set(node) != {"$type", "items"} or type(node["items"]) is not dict:
                raise self.bad(f"{where}: a {name} needs exactly the key 'items'")
            return cls(self.value(node["items"], where))
        fields = node.get("fields")
        if set(node) != {"$type", "fields"} or type(fields) is not dict:
            raise self.bad(f"{where}: a {name} needs exactly the key 'fields'")
        expected = _saved_fields(cls)
        missing = [f for f in expected if f not in fields]
        unknown = [f for f in fields if f not in expected]
        if missing or unknown:
            raise self.bad(f"{where}: {name} fields "
                           + "; ".join(filter(None, [
                               missing and f"missing {', '.join(missing)}",
                               unknown and f"unknown {', '.join(unknown)}"])))
        kwargs = {f.name: None for f in dataclasses.fields(cls) if f.init}
        kwargs.update({k: self.value(v, f"{where}.{k}") for k, v in fields.items()})
        return cls(**kwargs)
