"""Batched front-ends against torchaudio, clip by clip: the kaldi fbank and mel front-ends of a
zero-padded batch must give each clip the features torchaudio gives it alone."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from atdr.data.audio import load_audio
from atdr.data.features import get_frontend

TOLERANCE = 1e-4


def torchaudio_kaldi(wave: torch.Tensor, n_mels: int = 128) -> torch.Tensor:
    """The original loader: mean removal, then torchaudio's Kaldi fbank with the recipes' options."""
    wave = (wave - wave.mean())[None]
    if wave.shape[1] < 400:  # shorter than one window: padded to one frame
        wave = torch.nn.functional.pad(wave, (0, 400 - wave.shape[1]))
    return torchaudio.compliance.kaldi.fbank(wave, htk_compat=True, sample_frequency=16000, use_energy=False,
                                             window_type="hanning", num_mel_bins=n_mels, dither=0.0, frame_shift=10)


def torchaudio_mel(wave: torch.Tensor, n_mels: int = 64) -> torch.Tensor:
    """The original small feature, with its AmplitudeToDB(spec) quirk (20·log10 on power)."""
    spec = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=4096, win_length=1024, hop_length=400, center=True, pad_mode="constant",
        power=2, norm="slaney", n_mels=n_mels, mel_scale="slaney")((wave - wave.mean())[None])[0]
    return torchaudio.transforms.AmplitudeToDB(spec)(spec).T


REFERENCE = {"kaldi128": torchaudio_kaldi, "mel64": torchaudio_mel, "kaldi80": lambda w: torchaudio_kaldi(w, 80)}


def synthetic_clips(tmp_path) -> list[torch.Tensor]:
    """Several lengths, silence, clipping, and clips that went through the loader's conversions."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(48000) / 16000
    clips = [
        0.1 * torch.randn(160000, generator=g),  # 10 s of white noise
        0.3 * torch.sin(2 * np.pi * 440 * t) + 0.01 * torch.randn(48000, generator=g),  # tone in noise
        torch.zeros(16000),  # silence
        torch.clamp(3 * torch.randn(20000, generator=g), -1, 1),  # heavy clipping
        0.2 * torch.randn(401, generator=g),  # one frame and a sample
        0.2 * torch.randn(250, generator=g),  # shorter than one Kaldi window
        0.05 * torch.randn(16037, generator=g) + 0.5,  # DC offset, odd length
    ]
    tone = np.sin(2 * np.pi * 1000 * np.arange(22050 * 2) / 22050).astype(np.float32)
    sf.write(tmp_path / "stereo_22k.wav", np.stack([tone, 0.5 * tone], axis=1), 22050)  # stereo, 22.05 kHz
    sf.write(tmp_path / "mono_8k.flac", 0.5 * np.random.default_rng(1).standard_normal(8000 * 3).clip(-1, 1), 8000)
    sf.write(tmp_path / "mono_44k.wav", tone[:30000], 44100, subtype="PCM_16")
    with pytest.warns(UserWarning):  # downmixing and resampling are announced
        clips += [load_audio(tmp_path / name) for name in ("stereo_22k.wav", "mono_8k.flac", "mono_44k.wav")]
    return clips


def padded(clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(c) for c in clips])
    waves = torch.full((len(clips), int(lengths.max())), 0.25)  # padding must not leak into features
    for row, clip in zip(waves, clips):
        row[:len(clip)] = clip
    return waves, lengths


@pytest.mark.parametrize("name", ["kaldi128", "mel64", "kaldi80"])
def test_batch_matches_torchaudio_clip_by_clip(name, tmp_path):
    clips = synthetic_clips(tmp_path)
    waves, lengths = padded(clips)
    fe = get_frontend(name)
    features = fe.batch(waves, lengths)
    assert features.shape == (len(clips), fe.num_frames(int(lengths.max())), fe.n_mels)
    for clip, row in zip(clips, features):
        ref = REFERENCE[name](clip)
        assert len(ref) == fe.num_frames(len(clip))
        assert (row[:len(ref)] - ref).abs().max() <= TOLERANCE
        assert torch.all(row[len(ref):] == 0)  # the clip's own frames, then zero padding


@pytest.mark.parametrize("name, target_length", [("kaldi128", 1024), ("kaldi128", 50), ("mel64", 400), ("mel64", 30)])
def test_batch_pads_or_crops_to_the_target_length_like_pad_or_crop(name, target_length, tmp_path):
    clips = synthetic_clips(tmp_path)
    fe = get_frontend(name)
    features = fe.batch(*padded(clips), target_length=target_length)
    assert features.shape == (len(clips), target_length, fe.n_mels)
    for clip, row in zip(clips, features):
        ref = REFERENCE[name](clip)[:target_length]
        assert (row[:len(ref)] - ref).abs().max() <= TOLERANCE
        assert torch.all(row[len(ref):] == 0)


@pytest.mark.parametrize("name", ["kaldi128", "mel64"])
def test_real_audioset_clip_in_a_batch(name, audioset_fixtures):
    wave = load_audio(audioset_fixtures / "--BfvyPmVMo.wav")
    clips = [wave, wave[:100000], 0.5 * wave[50000:]]
    fe = get_frontend(name)
    features = fe.batch(*padded(clips), target_length=fe.default_target_length)
    for clip, row in zip(clips, features):
        ref = REFERENCE[name](clip)[:fe.default_target_length]
        assert (row[:len(ref)] - ref).abs().max() <= TOLERANCE


@pytest.mark.parametrize("name", ["kaldi128", "mel64"])
def test_a_clip_alone_is_a_batch_of_one(name, tmp_path):
    fe = get_frontend(name)
    for clip in synthetic_clips(tmp_path)[:4]:
        torch.testing.assert_close(fe(clip), fe.batch(clip[None])[0], rtol=0, atol=0)
        assert (fe(clip) - REFERENCE[name](clip)).abs().max() <= TOLERANCE


def test_large_batches_are_computed_in_chunks_with_the_same_result(monkeypatch):
    from atdr.data import features

    waves = 0.1 * torch.randn(5, 16000, generator=torch.Generator().manual_seed(3))
    fe = get_frontend("kaldi128")
    whole = fe.batch(waves)
    monkeypatch.setitem(features._CHUNK_VALUES, "cpu", 1)  # one clip per chunk
    torch.testing.assert_close(fe.batch(waves), whole, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", ["kaldi128", "mel64"])
def test_batch_on_cuda_matches_torchaudio(name, tmp_path):
    clips = [c for c in synthetic_clips(tmp_path) if c.abs().max() > 0]
    waves, lengths = padded(clips)
    fe = get_frontend(name)
    features = fe.batch(waves.cuda(), lengths, target_length=fe.default_target_length)
    assert features.device.type == "cuda"
    for clip, row in zip(clips, features.cpu()):
        ref = REFERENCE[name](clip)[:fe.default_target_length]
        # cuFFT and pocketfft round differently; Kaldi's quietest bins amplify that a little
        assert (row[:len(ref)] - ref).abs().max() <= 1e-2
        assert (row[:len(ref)] - ref).abs().mean() <= 2e-4  # measured on an H100: 1.0e-4


def test_features_keep_full_precision_when_training_allows_tf32():
    """TF32 matrix products (on CUDA; bf16 ones on some CPUs) would change the mel energies."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    waves = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(5)).to(device)
    fe = get_frontend("kaldi128")
    reference = fe.batch(waves)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        torch.testing.assert_close(fe.batch(waves), reference, rtol=0, atol=0)
        assert torch.get_float32_matmul_precision() == "medium"  # the caller's setting is left alone
    finally:
        torch.set_float32_matmul_precision(previous)
