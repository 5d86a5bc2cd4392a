"""Read and write 3D Gaussian Splatting .ply files in the INRIA layout.

The vertex element holds x y z (nx ny nz), f_dc_0..2, f_rest_0..(3(K-1)-1), opacity (logit), scale_0..2 (log) and
rot_0..3 (w x y z). f_rest is channel-major: f_rest[c * (K - 1) + j] is coefficient j + 1 of colour channel c.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import AssetError
from ..core.fileio import atomic_path
from .cloud import GaussianCloud, sh_coeff_count

MEMORY_LIMIT_ENV = "FACEPOLICY_PLY_MEMORY_LIMIT_MB"
DEFAULT_MEMORY_LIMIT = 4 * 1024**3
_MAX_HEADER = 1 << 16

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
    "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}
_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3")


class PlyError(AssetError):
    """A .ply file is not a usable 3DGS splat."""


def _err(path, message: str) -> PlyError:
    return PlyError(f'"{Path(path).name}": {message}')


def memory_limit() -> int:
    """Bytes a .ply import may use: FACEPOLICY_PLY_MEMORY_LIMIT_MB if set, else 4 GiB."""
    value = os.environ.get(MEMORY_LIMIT_ENV)
    if value:
        try:
            return int(float(value) * 1024**2)
        except ValueError:
            raise PlyError(f"{MEMORY_LIMIT_ENV} must be a number of megabytes, got {value!r}") from None
    return DEFAULT_MEMORY_LIMIT


def estimate_memory(n_gaussians: int, sh_coeffs: int, record_bytes: int) -> int:
    """Peak bytes to load and bind ``n_gaussians``: the raw records, the float32 cloud (about three live copies
    while converting) and the float64 binding arrays."""
    cloud = 4 * (3 + 3 + 4 + 1 + 3 * sh_coeffs)
    binding = 8 * (1 + 3 + 3 + 4 + 3 + 1) + 4 * 3 * sh_coeffs
    return int(n_gaussians) * (record_bytes + 3 * cloud + binding)


def _format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


class _Header:
    def __init__(self, fmt: str, elements: list, size: int):
        self.format = fmt
        self.elements = elements  # [(name, count, [(prop, dtype) | (prop, None) for list props])]
        self.size = size


def _read_header(path, f) -> _Header:
    if f.read(4) not in (b"ply\n", b"ply\r"):
        raise _err(path, "not a PLY file (it does not start with 'ply')")
    f.seek(0)
    raw = f.read(_MAX_HEADER)
    end = raw.find(b"end_header")
    if end < 0:
        raise _err(path, "PLY header has no 'end_header' within the first 64 KB")
    stop = raw.index(b"\n", end) + 1 if b"\n" in raw[end:] else len(raw)
    lines = raw[:stop].decode("ascii", "replace").splitlines()
    fmt = None
    elements: list = []
    for line in lines[1:]:
        parts = line.split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        if parts[0] == "format":
            if len(parts) < 2 or parts[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise _err(path, f"unsupported PLY format line: {line.strip()!r}")
            fmt = parts[1]
        elif parts[0] == "element":
            try:
                count = int(parts[2])
            except (IndexError, ValueError):
                raise _err(path, f"bad element line in the header: {line.strip()!r}") from None
            if count < 0:
                raise _err(path, f"negative element count in the header: {line.strip()!r}")
            elements.append((parts[1], count, []))
        elif parts[0] == "property":
            if not elements:
                raise _err(path, "PLY header has a property before any element")
            if len(parts) >= 2 and parts[1] == "list":
                elements[-1][2].append((parts[-1], None))
            elif len(parts) == 3 and parts[1] in _TYPES:
                elements[-1][2].append((parts[2], _TYPES[parts[1]]))
            else:
                raise _err(path, f"unsupported property line: {line.strip()!r}")
        elif parts[0] == "end_header":
            break
    if fmt is None:
        raise _err(path, "PLY header has no format line")
    return _Header(fmt, elements, stop)


def _sh_layout(path, names: list[str]) -> int:
    """Number of SH coefficients per channel implied by the f_rest_* properties."""
    rest = sorted(int(n[7:]) for n in names if n.startswith("f_rest_") and n[7:].isdigit())
    if rest != list(range(len(rest))):
        raise _err(path, "the f_rest_* properties are not numbered 0..n-1")
    for degree in range(4):
        if len(rest) == 3 * (sh_coeff_count(degree) - 1):
            return sh_coeff_count(degree)
    raise _err(path, f"{len(rest)} f_rest_* properties do not match SH degree 0-3 (0, 9, 24 or 45)")


def read_ply(path, max_bytes: int | None = None) -> GaussianCloud:
    """Load a 3DGS .ply. Raises PlyError with a plain-words reason for anything malformed, and refuses files whose
    estimated memory use exceeds ``max_bytes`` (default: memory_limit())."""
    path = Path(path)
    limit = memory_limit() if max_bytes is None else int(max_bytes)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise _err(path, f"cannot open ({exc.strerror})") from None
    with f:
        header = _read_header(path, f)
        names_of = [e[0] for e in header.elements]
        if "vertex" not in names_of:
            raise _err(path, "no 'vertex' element: this is not a Gaussian Splatting file")
        vi = names_of.index("vertex")
        _, count, props = header.elements[vi]
        names = [p[0] for p in props]
        missing = [n for n in _REQUIRED if n not in names]
        if missing:
            raise _err(path, "missing 3DGS attributes: " + ", ".join(missing) +
                       " (a 3DGS .ply has x y z, f_dc_*, f_rest_*, opacity, scale_*, rot_*)")
        if any(t is None for _, t in props):
            raise _err(path, "the vertex element has list properties; this is not a 3DGS splat")
        if len(set(names)) != len(names):
            raise _err(path, "the vertex element repeats a property name")
        K = _sh_layout(path, names)
        if count == 0:
            raise _err(path, "the file declares 0 gaussians")

        endian = ">" if header.format == "binary_big_endian" else "<"
        dtype = np.dtype([(n, endian + t) for n, t in props])
        need = estimate_memory(count, K, dtype.itemsize)
        if need > limit:
            raise _err(path, f"{count:,} gaussians need about {_format_bytes(need)} of memory to load, above the "
                             f"limit of {_format_bytes(limit)}; raise it with {MEMORY_LIMIT_ENV} (megabytes) or "
                             "thin out the splat")
        if header.format == "ascii":
            data = _read_ascii(path, f, header, vi, dtype)
        else:
            data = _read_binary(path, f, header, vi, dtype)

    def cols(prefix, n):
        if n == 0:
            return np.zeros((count, 0), np.float32)
        return np.stack([data[f"{prefix}{i}"] for i in range(n)], axis=1).astype(np.float32)

    means = np.stack([data["x"], data["y"], data["z"]], axis=1).astype(np.float32)
    dc = cols("f_dc_", 3)
    rest = cols("f_rest_", 3 * (K - 1)).reshape(count, 3, K - 1).transpose(0, 2, 1)
    sh = np.concatenate([dc[:, None, :], rest], axis=1)
    cloud = GaussianCloud(means, cols("scale_", 3), cols("rot_", 4), data["opacity"].astype(np.float32), sh)
    _check_values(path, cloud)
    return cloud


def _check_values(path, cloud: GaussianCloud) -> None:
    bad = cloud.non_finite()
    if bad:
        first = cloud.n
        for name in bad:
            rows = ~np.isfinite(getattr(cloud, name).reshape(cloud.n, -1)).all(axis=1)
            first = min(first, int(np.argmax(rows)))
        raise _err(path, "NaN or Inf values in " + ", ".join(f"{k} ({v} gaussians)" for k, v in bad.items()) +
                   f"; the first is gaussian {first}")
    if (np.linalg.norm(cloud.rotations, axis=1) == 0).any():
        n_zero = int((np.linalg.norm(cloud.rotations, axis=1) == 0).sum())
        raise _err(path, f"{n_zero} gaussians have an all-zero rotation quaternion")


def _skip_bytes(path, header: _Header, upto: int) -> int:
    offset = 0
    for name, count, props in header.elements[:upto]:
        if any(t is None for _, t in props):
            raise _err(path, f"element {name!r} before the vertices has list properties; cannot skip it")
        offset += count * sum(np.dtype(t).itemsize for _, t in props)
    return offset


def _read_binary(path, f, header: _Header, vi: int, dtype: np.dtype) -> np.ndarray:
    count = header.elements[vi][1]
    start = header.size + _skip_bytes(path, header, vi)
    size = os.fstat(f.fileno()).st_size
    available = max(0, size - start)
    need = count * dtype.itemsize
    if available < need:
        raise _err(path, f"the header declares {count:,} gaussians but the file holds only "
                         f"{available // dtype.itemsize:,} (truncated, or the element count is wrong)")
    later_fixed = all(t is not None for _, _, props in header.elements[vi + 1:] for _, t in props)
    if later_fixed:
        after = sum(c * sum(np.dtype(t).itemsize for _, t in p) for _, c, p in header.elements[vi + 1:])
        if available != need + after:
            extra = available - need - after
            raise _err(path, f"the header declares {count:,} gaussians but the file has {extra:,} bytes more "
                             f"({extra / dtype.itemsize:.1f} records): the element count is wrong or the file is "
                             "corrupt")
    f.seek(start)
    data = np.fromfile(f, dtype=dtype, count=count)
    if len(data) != count:
        raise _err(path, f"could read only {len(data):,} of the {count:,} gaussians the header declares")
    return data


def _read_ascii(path, f, header: _Header, vi: int, dtype: np.dtype) -> np.ndarray:
    count = header.elements[vi][1]
    f.seek(header.size)
    lines = f.read().decode("ascii", "replace").splitlines()
    skip = sum(c for _, c, _ in header.elements[:vi])
    rows = [ln for ln in lines[skip:skip + count] if ln.strip()]
    if len(rows) < count:
        raise _err(path, f"the header declares {count:,} gaussians but the file holds only {len(rows):,}")
    if vi == len(header.elements) - 1 and any(ln.strip() for ln in lines[skip + count:]):
        raise _err(path, f"the header declares {count:,} gaussians but the file has more rows")
    try:
        values = np.array([[float(v) for v in ln.split()] for ln in rows], np.float64)
    except ValueError:
        raise _err(path, "a vertex row holds something that is not a number") from None
    if values.shape != (count, len(dtype.names)):
        raise _err(path, f"vertex rows must have {len(dtype.names)} values each")
    data = np.empty(count, dtype)
    for i, name in enumerate(dtype.names):
        data[name] = values[:, i]
    return data


def write_ply(path, cloud: GaussianCloud) -> None:
    """Write ``cloud`` as a binary little-endian INRIA 3DGS .ply (atomically)."""
    K = cloud.sh.shape[1]
    props = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
             *[f"f_rest_{i}" for i in range(3 * (K - 1))], "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3"]
    n = cloud.n
    rest = cloud.sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (K - 1))
    columns = np.concatenate([cloud.means, np.zeros((n, 3), np.float32), cloud.sh[:, 0, :], rest,
                              cloud.opacity_logits[:, None], cloud.log_scales, cloud.rotations], axis=1)
    columns = np.ascontiguousarray(columns, dtype="<f4")
    header = "ply\nformat binary_little_endian 1.0\ncomment written by FacePolicy\n"
    header += f"element vertex {n}\n" + "".join(f"property float {p}\n" for p in props) + "end_header\n"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(columns.tobytes())

