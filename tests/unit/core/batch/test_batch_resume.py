"""core.batch.resume: up to date means same inputs, same parameters and newer outputs."""

from __future__ import annotations

import os

import envelope_engine
from batch_helpers import write_line

from facepolicy.core import batch

envelope_engine.register()


def test_up_to_date_means_same_inputs_same_parameters_and_newer_outputs(tmp_path):
    wav = write_line(tmp_path / "a.wav")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"))
    row = batch.BakeRow(1, str(wav), "a", engine="envelope")
    assert not batch.is_up_to_date(row, opts)
    assert batch.bake_row(row, opts).status == "ok"
    assert batch.is_up_to_date(row, opts)
    assert not batch.is_up_to_date(batch.BakeRow(1, str(wav), "a", engine="envelope", seed=1), opts)
    assert not batch.is_up_to_date(row, batch.BatchOptions(out_dir=opts.out_dir, fps=24.0))
    assert not batch.is_up_to_date(row, batch.BatchOptions(out_dir=opts.out_dir, formats=("csv", "json", "fbx")))
    # A transcript appearing beside the audio changes the result.
    (tmp_path / "a.txt").write_text("hi", encoding="utf-8")
    assert not batch.is_up_to_date(row, opts)
    (tmp_path / "a.txt").unlink()
    assert batch.is_up_to_date(row, opts)
    # An output older than an input (even with the same content) is re-baked.
    st = wav.stat()
    os.utime(tmp_path / "out" / "a.csv", ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    assert not batch.is_up_to_date(row, opts)
    assert batch.bake_row(row, opts).status == "ok" and batch.is_up_to_date(row, opts)
    # New audio content.
    write_line(wav, freq=300.0)
    assert not batch.is_up_to_date(row, opts)
    assert batch.bake_row(row, opts).status == "ok" and batch.is_up_to_date(row, opts)
    (tmp_path / "out" / "a.json").unlink()
    assert not batch.is_up_to_date(row, opts)


def test_a_transcripts_language_counts_only_where_there_is_a_transcript(tmp_path):
    from dataclasses import replace

    wav = write_line(tmp_path / "a.wav")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"))
    row = batch.BakeRow(1, str(wav), "a", engine="envelope")
    polish = replace(row, transcript_language="pl")
    assert batch.row_fingerprint(polish, opts) == batch.row_fingerprint(row, opts), "no transcript: nothing changes"
    (tmp_path / "a.txt").write_text("Mama kupiła mleko.", encoding="utf-8")
    assert batch.row_fingerprint(polish, opts) != batch.row_fingerprint(row, opts)
