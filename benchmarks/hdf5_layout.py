"""HDF5 layout of the image fields: file size against the speed of reading training batches.

Generates ``--size`` images (like v1, ``--sersics 4`` to keep it quick), then copies the two
image fields (``img``, ``img_nonoise``) into files of several layouts: contiguous, chunks of
1, 16 and 64 rows, uncompressed, gzip (level 4, with the shuffle filter) or lzf (with
shuffle). For each it prints the bytes a row takes on disk and the time to read batches of
``--batch`` rows drawn at random and sorted (what `galaxies.networks.training.stream` asks of a data
set), through h5py, from a file the page cache holds (the read is decompression and h5py's
selection; a cold disk adds its own seek time to every chunk touched).

    python benchmarks/hdf5_layout.py --size 3000

Measured (3,000 images like v1, batches of 64 rows; the machine shared, load average 6.9 on
2 cores, so the times are high but their ratios hold; bytes stored / raw float32 bytes):

    layout              img  nonoise  ms / batch
    contiguous        1.000    1.000        8.3
    chunks  1         1.000    1.000      139.9
    chunks  1 gzip    0.898    0.781      159.4
    chunks  1 lzf     0.945    0.827      156.6
    chunks 16         1.003    1.003      131.5
    chunks 16 gzip    0.855    0.754      284.2
    chunks 16 lzf     0.933    0.821      367.6
    chunks 64         1.003    1.003      125.7
    chunks 64 gzip    0.854    0.749      652.0
    chunks 64 lzf     0.933    0.820      864.6

Noisy float32 images hardly compress (gzip with shuffle keeps 85-90% of ``img``, lzf 93-95%):
their low mantissa bits are noise. The noiseless images keep 75-83% (their values are
smooth, but a float32 mantissa is full even where the light is faint). Every chunked layout
reads a random batch 15x slower than contiguous storage even uncompressed (h5py selects a
batch chunk by chunk), and compression multiplies that by the rows a chunk holds, all
decompressed for the one row a batch wants.

Choice: contiguous and uncompressed (`galaxies.storage.files.create_dataset_fields`, unchanged). At
most 15% of the file is to be saved, random reads are 15-100x faster, and a contiguous field
is allocated once, at its first write, so writing later chunks changes no HDF5 metadata but
the progress record: a run killed between chunks leaves a consistent partial file
(`galaxies.storage.resumable`, tested with SIGKILL).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from galaxies.simulation.generate import RandomSpec, generate_random

LAYOUTS = [("contiguous", None, None)] + [
    (f"chunks {rows:>2}" + (f" {name}" if name else ""), rows, name)
    for rows in (1, 16, 64) for name in (None, "gzip", "lzf")]


def write(path: Path, source: dict, rows: int | None, compression: str | None) -> None:
    with h5py.File(path, "w") as f:
        for key, data in source.items():
            options = {}
            if rows:
                options["chunks"] = (rows,) + data.shape[1:]
            if compression:
                options.update(compression=compression, shuffle=True)
                if compression == "gzip":
                    options["compression_opts"] = 4
            f.create_dataset(key, data=data, **options)


def read_batches(path: Path, batch: int, batches: int, seed: int) -> float:
    """Seconds per batch of ``batch`` sorted random rows of both image fields."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "r") as f:
        n = len(f["img"])
        rows = [np.sort(rng.choice(n, batch, replace=False)) for _ in range(batches)]
        f["img"][rows[0]]  # open the datasets, warm h5py
        start = time.perf_counter()
        for r in rows:
            f["img"][r], f["img_nonoise"][r]
        return (time.perf_counter() - start) / batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    print(f"{args.size} images, batches of {args.batch} random rows; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        tmp = Path(tmp)
        generate_random(tmp / "set.h5", RandomSpec(sersics=4), args.size, seed=3, jobs=1)
        with h5py.File(tmp / "set.h5") as f:
            source = {k: f[k][()] for k in ("img", "img_nonoise")}
        raw = {k: v.nbytes / len(v) for k, v in source.items()}
        print(f"{'layout':<18} {'img':>9} {'nonoise':>9}  {'ms / batch':>10}")
        for name, rows, compression in LAYOUTS:
            path = tmp / "layout.h5"
            write(path, source, rows, compression)
            with h5py.File(path) as f:
                ratio = {k: f[k].id.get_storage_size() / len(f[k]) / raw[k] for k in source}
            seconds = read_batches(path, args.batch, args.batches, seed=1)
            print(f"{name:<18} {ratio['img']:>9.3f} {ratio['img_nonoise']:>9.3f}  "
                  f"{1e3 * seconds:>10.2f}")
            path.unlink()
    print("(img and nonoise: bytes stored over raw float32 bytes)")


if __name__ == "__main__":
    main()
