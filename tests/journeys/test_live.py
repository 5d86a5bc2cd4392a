"""Journeys through `facepolicy live`: speech piped in or played from a file, Live Link Face packets caught by a
loopback receiver (as Unreal would get them) and the CSV of the take read back."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from journey import ARCTIC, console_script, facepolicy, write_wav

from facepolicy.core.livelink import read_livelink_csv

SPEECH = ARCTIC / "arctic_a0007.wav"  # 4.0 s of real speech, 16 kHz
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")  # pocketsphinx-testdata's real clips
ARKIT = 52
# The EARFaceBlendShape indices of the mouth channels the journeys look at.
JAW_OPEN, MOUTH_LEFT, MOUTH_RIGHT = 17, 21, 22


class Receiver:
    """A Live Link UDP listener on loopback that parses every packet as Unreal's Live Link Face source does."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.packets: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.packets.append(parse(data))

    def close(self) -> list[dict]:
        time.sleep(0.3)  # the last datagrams are on their way
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.packets


def parse(data: bytes) -> dict:
    """The packet's fields, checking every length the format gives (big-endian, version 6, 61 floats)."""
    at = 0
    (version,) = struct.unpack_from(">B", data, at)
    at += 1
    texts = []
    for _ in range(2):
        (n,) = struct.unpack_from(">i", data, at)
        texts.append(data[at + 4 : at + 4 + n].decode("utf-8"))
        at += 4 + n
    frame, subframe, num, den, count = struct.unpack_from(">ifiiB", data, at)
    at += 17
    values = np.array(struct.unpack_from(f">{count}f", data, at), np.float32)
    assert at + 4 * count == len(data), "the packet has bytes after its values"
    return {"version": version, "device": texts[0], "subject": texts[1], "frame": frame, "subframe": subframe,
            "rate": (num, den), "count": count, "values": values}


def pcm(path, rate: int | None = None) -> bytes:
    """The file as 16-bit little-endian mono PCM (resampled by libsndfile's reader is not needed: rates match)."""
    x, file_rate = sf.read(str(path), dtype="int16")
    assert rate in (None, file_rate)
    return x.astype("<i2").tobytes()


def live(tmp_path, *args, stdin_bytes: bytes | None = None, timeout: float = 120):
    src = tmp_path / "in.pcm"
    if stdin_bytes is not None:
        src.write_bytes(stdin_bytes)
    with open(src if stdin_bytes is not None else os.devnull, "rb") as f:
        return facepolicy("live", *args, stdin=f, timeout=timeout)


def test_speech_piped_in_reaches_a_live_link_receiver_frame_by_frame(tmp_path):
    rx = Receiver()
    data = pcm(SPEECH)
    r = live(tmp_path, "-", "--livelink", rx.address, "--subject", "Narrator", "--csv", tmp_path / "take.csv",
             stdin_bytes=data)
    packets = rx.close()
    assert r.returncode == 0, r.stderr
    seconds = len(data) / 2 / 16000
    assert abs(len(packets) - seconds * 30) <= 1, f"{len(packets)} packets for {seconds:.2f} s at 30 fps"
    assert [p["frame"] for p in packets] == list(range(len(packets))), "frames lost or out of order"
    assert {p["version"] for p in packets} == {6} and {p["count"] for p in packets} == {61}
    assert {p["subject"] for p in packets} == {"Narrator"} and {p["rate"] for p in packets} == {(30, 1)}
    weights = np.stack([p["values"][:ARKIT] for p in packets])
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    jaw = weights[:, JAW_OPEN]
    assert jaw.max() > 0.3 and jaw[:5].max() < 0.1, "the jaw should open with the speech and rest before it"
    # The CSV holds what was sent: same frames, same values, the CSV's own column order.
    take = read_livelink_csv(tmp_path / "take.csv")
    assert take.n_frames == len(packets) and take.fps == 30
    assert np.array_equal(take.channel("jawOpen"), jaw)
    assert np.array_equal(take.channel("mouthLeft"), weights[:, MOUTH_LEFT])
    assert np.array_equal(take.channel("mouthRight"), weights[:, MOUTH_RIGHT])
    assert "frames at 30 fps" in r.stderr


def test_a_tts_line_streamed_live_opens_the_vowels_between_its_closures(tmp_path):
    """NPCs voiced by TTS at run time: between p/b/m the live face opens its vowels (a closure heard at the edge of
    the decoded audio used to be carried into the vowel after it, which then stayed shut), scored against flite's own
    phone timings with the lip-sync metrics."""
    from facepolicy.core import metrics
    from model.data import flite

    if not flite.available():
        pytest.skip("flite is not installed (bash run.sh test installs it)")
    utt = flite.synthesize("Pam, Bob and Mimi bought a combo, a mop and a pump.", flite.FliteVoice("awb"))
    data = (np.clip(utt.samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    r = live(tmp_path, "-", "--csv", tmp_path / "take.csv", stdin_bytes=data)
    assert r.returncode == 0, r.stderr
    s = metrics.score_clip(read_livelink_csv(tmp_path / "take.csv"), utt.phones, utt.samples)
    assert s.bilabial_hits == s.bilabial_total, f"lips missed {s.missed}"
    assert s.open_hits >= s.open_total - 1, f"open vowels {s.open_hits}/{s.open_total}: missed {s.missed}"


def test_an_m_the_live_recogniser_wavers_on_still_closes_the_lips(tmp_path):
    """A reader's "he might even have been made amiable himself" (LibriVox): the m of "amiable" (1.82 to
    1.89 s) is heard as an n, then a w, and the encoder hears it for one plan only before its frames leave; the
    streamed face closes its lips there all the same, as the lip-sync metrics count a closure (a frame within
    1/30 s of the m at most 12 % of the way from closed to open)."""
    from facepolicy.core import metrics

    wav = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0930.wav"
    if not wav.exists():
        pytest.skip("pocketsphinx-testdata is not installed (bash run.sh test installs it)")
    x, rate = sf.read(str(wav), dtype="int16")
    r = live(tmp_path, "-", "--input-rate", str(rate), "--csv", tmp_path / "take.csv",
             stdin_bytes=x.astype("<i2").tobytes())
    assert r.returncode == 0, r.stderr
    geometry = metrics.default_geometry()
    gap = metrics.lip_gap(read_livelink_csv(tmp_path / "take.csv"), geometry)
    t = np.arange(len(gap)) / 30
    around_m = gap[(t >= 1.82 - 1 / 30) & (t <= 1.89 + 1 / 30)]
    closed = geometry.threshold(metrics.CLOSED_FRACTION)
    assert around_m.min() <= closed, f"lips {around_m.round(4)} around the m, closed at {closed:.4f} or less"
    assert gap[(t > 1.70) & (t < 1.80)].max() > closed  # the ey before it is open: not a take that never opens


def test_any_rate_and_any_cut_of_the_bytes_gives_as_many_frames_as_the_audio_lasts(tmp_path):
    x, _ = sf.read(str(SPEECH), dtype="float32")
    t = np.arange(int(len(x) * 3)) / 48000  # the clip at 48 kHz, as an audio interface would deliver it
    x48 = np.interp(t, np.arange(len(x)) / 16000, x).astype(np.float32)
    data = (x48 * 32767).astype("<i2").tobytes()
    proc = subprocess.Popen([console_script(), "live", "-", "--input-rate", "48000", "--fps", "60", "--csv",
                             str(tmp_path / "take.csv")], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    rng = np.random.default_rng(0)
    at = 0
    while at < len(data):  # odd-sized writes: samples split across writes
        n = int(rng.integers(1, 5000)) | 1
        proc.stdin.write(data[at : at + n])
        proc.stdin.flush()
        at += n
    proc.stdin.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    take = read_livelink_csv(tmp_path / "take.csv", fps=60)
    assert abs(take.n_frames - len(x48) / 48000 * 60) <= 1
    assert take.channel("jawOpen").max() > 0.3


def test_stopping_mid_stream_leaves_a_valid_take(tmp_path):
    data = pcm(SPEECH)
    out = tmp_path / "take.csv"
    proc = subprocess.Popen([console_script(), "live", "-", "--csv", str(out)], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    chunk = 3200  # 0.1 s of audio per write, at about twice real time
    for at in range(0, len(data) // 2, chunk):
        proc.stdin.write(data[at : at + chunk])
        proc.stdin.flush()
        time.sleep(0.05)
    deadline = time.time() + 60
    while (not out.exists() or out.read_text().count("\n") < 11) and time.time() < deadline:  # header + 10 frames
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # Ctrl-C, with the input still open
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130, err
    proc.stdin.close()
    take = read_livelink_csv(out, fps=30)
    assert 10 <= take.n_frames < 60, "the take should hold what was sent before the stop"
    assert take.values.shape[1] == 59 and np.all(np.isfinite(take.values))
    assert "stopped" in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["odd byte", "silence", "clipping"])
def test_bad_pcm_never_breaks_the_stream(tmp_path, kind):
    seconds = 2.0
    n = int(seconds * 16000)
    if kind == "odd byte":
        data = pcm(SPEECH)[: 2 * n] + b"\x7f"
    elif kind == "silence":
        data = np.zeros(n, "<i2").tobytes()
    else:  # a voice driven far past full scale: every sample at ±32767
        x, _ = sf.read(str(SPEECH), dtype="float32")
        data = (np.clip(x[:n] * 60, -1, 1) * 32767).astype("<i2").tobytes()
    r = live(tmp_path, "-", "--csv", tmp_path / "take.csv", stdin_bytes=data)
    assert r.returncode == 0, r.stderr
    take = read_livelink_csv(tmp_path / "take.csv")
    assert abs(take.n_frames - seconds * 30) <= 1 and np.all(np.isfinite(take.values))
    jaw = take.channel("jawOpen")
    if kind == "silence":
        assert jaw.max() < 0.1
    else:
        assert jaw.max() > 0.2
    if kind == "odd byte":
        assert "its last byte was dropped" in r.stderr


def test_a_file_played_in_real_time_takes_as_long_as_it_lasts(tmp_path):
    wav = write_wav(tmp_path / "line.wav", sf.read(str(SPEECH), dtype="float32")[0][:32000])
    t0 = time.perf_counter()
    r = facepolicy("live", wav, "--realtime", "--csv", tmp_path / "take.csv")
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    assert wall >= 2.0, f"a 2 s file played in {wall:.2f} s"
    assert read_livelink_csv(tmp_path / "take.csv").n_frames == 60


def test_the_microphone_and_the_outputs_are_explained_in_one_sentence(tmp_path):
    r = facepolicy("live", "--mic", "--csv", tmp_path / "take.csv")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    try:
        import sounddevice  # noqa: F401
    except ImportError:
        assert "listening to the microphone needs the sounddevice package" in r.stderr
    except OSError:
        assert "sounddevice could not load PortAudio" in r.stderr
    else:  # no sound card on a build machine
        assert "no microphone was found" in r.stderr
    r = live(tmp_path, "-", stdin_bytes=b"")
    assert r.returncode == 1 and "give --livelink HOST:PORT and/or --csv FILE" in r.stderr
    r = live(tmp_path, "-", "--livelink", "localhost:99999", stdin_bytes=b"")
    assert r.returncode == 1 and "not a HOST:PORT address" in r.stderr


def test_a_streamed_line_s_lips_move_steadily_and_keep_every_closure_and_opening(tmp_path):
    """The live face's lip gap pulled as taut as a stream can (core.straighten.LiveStraightener): an ARCTIC line
    streamed through `facepolicy live`, scored against its phone labels from the CSV it wrote. Its jitter was 0.658
    before (0.614 now); its two bilabials and its open vowel stay."""
    from facepolicy.core import metrics

    r = live(tmp_path, "-", "--csv", tmp_path / "take.csv", stdin_bytes=pcm(ARCTIC / "arctic_a0009.wav"))
    assert r.returncode == 0, r.stderr
    x, _ = sf.read(str(ARCTIC / "arctic_a0009.wav"), dtype="float32")
    phones = metrics.read_lab(ARCTIC / "arctic_a0009_phone.lab")
    s = metrics.score_clip(read_livelink_csv(tmp_path / "take.csv"), phones, x)
    assert (s.bilabial_hits, s.bilabial_total, s.open_hits, s.open_total) == (2, 2, 1, 1), s.missed
    assert s.jitter <= 0.63, f"jitter {s.jitter:.3f}"
