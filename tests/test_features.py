"""Front-ends against the original formulas, audio loading, padding."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from atdr.data.audio import AudioConversionWarning, load_audio
from atdr.data.features import get_frontend, pad_or_crop
from atdr.errors import AtdrError


def test_kaldi128_on_the_real_clip_is_998_frames_padded_to_1024(audioset_fixtures):
    wave = load_audio(audioset_fixtures / "--BfvyPmVMo.wav")
    assert wave.shape == (160000,) and wave.dtype == torch.float32
    fe = get_frontend("kaldi128")
    fbank = fe(wave)
    assert fbank.shape == (998, 128) and fe.num_frames(160000) == 998
    # The original: torchaudio.load -> mean removal -> kaldi fbank with these exact settings.
    data, sr = sf.read(audioset_fixtures / "--BfvyPmVMo.wav", dtype="float32")
    ref_wave = torch.from_numpy(data)[None]
    ref = torchaudio.compliance.kaldi.fbank(
        ref_wave - ref_wave.mean(), htk_compat=True, sample_frequency=sr, use_energy=False,
        window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)
    torch.testing.assert_close(fbank, ref)
    padded = pad_or_crop(fbank, 1024)
    assert padded.shape == (1024, 128) and torch.all(padded[998:] == 0)


def test_mel64_matches_the_original_small_feature_and_its_db_quirk():
    wave = torch.randn(16000 * 10) * 0.1
    feats = get_frontend("mel64")(wave)
    assert feats.shape == (401, 64)
    w = (wave - wave.mean())[None]
    spec = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=4096, win_length=1024, hop_length=400, center=True, pad_mode="constant",
        power=2, norm="slaney", n_mels=64, mel_scale="slaney")(w).squeeze()
    ref = torchaudio.transforms.AmplitudeToDB(spec)(spec).T  # the original passes spec as `stype`
    torch.testing.assert_close(feats, ref)
    assert pad_or_crop(feats, 400).shape == (400, 64)


@pytest.mark.parametrize("name, n_mels, hop", [("kaldi128", 128, 160), ("kaldi80", 80, 160), ("mel64", 64, 400)])
def test_frontend_names(name, n_mels, hop):
    fe = get_frontend(name)
    assert (fe.n_mels, fe.hop_length) == (n_mels, hop)
    assert fe(torch.zeros(16000)).shape == (fe.num_frames(16000), n_mels)


@pytest.mark.parametrize("name", ["mfcc40", "kaldi", "mel4", "kaldi1000"])
def test_unknown_frontend(name):
    with pytest.raises(AtdrError, match="unknown front-end"):
        get_frontend(name)


def test_short_clip_still_gives_a_frame():
    assert get_frontend("kaldi128")(torch.zeros(100)).shape == (1, 128)


def test_stereo_and_other_rates_are_converted_once_told(tmp_path):
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    sf.write(tmp_path / "st.wav", np.stack([tone, tone], axis=1), 44100)
    with pytest.warns(AudioConversionWarning) as record:
        wave = load_audio(tmp_path / "st.wav")
    assert wave.shape == (16000,)
    assert {str(w.message) for w in record} == {"downmixing 2-channel clips to mono", "resampling clips from 44100 Hz to 16000 Hz"}
    # The tone survives resampling: its spectrum peaks at 440 Hz.
    assert abs(np.argmax(np.abs(np.fft.rfft(wave.numpy()))) - 440) <= 1
    with pytest.warns(AudioConversionWarning), pytest.raises(AtdrError, match="is at 44100 Hz, expected 16000 Hz"):
        load_audio(tmp_path / "st.wav", resample=False)


def test_unreadable_and_empty_audio(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(AtdrError, match="cannot read audio .*bad.wav"):
        load_audio(tmp_path / "bad.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AtdrError, match="empty"):
        load_audio(tmp_path / "empty.wav")
