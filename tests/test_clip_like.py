"""The CLIP-like interface (clip_like.py): OpenCLIP on a tiny randomly initialised model, never a download."""

import json

import pytest
import torch

from ssl_tutorial import clip_like

open_clip = pytest.importorskip("open_clip")
pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_name(tmp_path_factory):
    path = tmp_path_factory.mktemp("open_clip") / "ssl-tutorial-tiny.json"
    path.write_text(json.dumps(TINY))
    open_clip.add_model_config(path)
    return "ssl-tutorial-tiny"


def test_open_clip_adapter_on_a_random_model(tiny_name):
    torch.manual_seed(0)
    clip = clip_like.open_clip_model(tiny_name, pretrained=None)
    images = torch.rand(3, 3, 20, 20)  # any size in [0, 1]: resized to the model's 32 px and normalised
    x = clip.preprocess(images)
    assert x.shape == (3, 3, 32, 32) and clip.image_size == 32
    assert x.mean().abs() < 3 and not torch.allclose(x, images.new_zeros(1))
    image = clip.encode_image(images, batch_size=2)
    text = clip.encode_text(["a photo of a cat", "a dog", "a red circle"])
    assert image.shape == text.shape == (3, 16)
    assert torch.allclose(image.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(text.norm(dim=1), torch.ones(3), atol=1e-5)
    ids = clip.tokenize(["a photo of a cat"])
    assert ids.shape == (1, 16) and ids.dtype == torch.long
    with torch.no_grad():  # the adapter is the model's own encoders, normalised
        expected = torch.nn.functional.normalize(clip.model.encode_text(ids), dim=1)
    assert torch.allclose(text[:1], expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        clip.encode_image(torch.rand(3, 20, 20))


def test_open_clip_mean_and_std_come_from_the_model(tiny_name):
    clip = clip_like.open_clip_model(tiny_name, pretrained=None)
    assert torch.allclose(clip.mean.flatten(), torch.tensor(open_clip.OPENAI_DATASET_MEAN), atol=1e-6)
    assert torch.allclose(clip.std.flatten(), torch.tensor(open_clip.OPENAI_DATASET_STD), atol=1e-6)


def test_unknown_architecture_and_weights_are_one_line_errors(tiny_name):
    with pytest.raises(ValueError, match="unknown OpenCLIP architecture 'ViT-Z-99'"):
        clip_like.open_clip_model("ViT-Z-99")
    with pytest.raises(ValueError, match="OpenCLIP has no weights 'nonsense' for ViT-B-32; choose from .*laion2b"):
        clip_like.open_clip_model("ViT-B-32", "nonsense")
    with pytest.raises(ValueError, match="must be 'mini' or ARCHITECTURE:TAG"):
        clip_like.load_clip(spec="ViT-B-32")
    with pytest.raises(ValueError, match="pass cfg = setup"):
        clip_like.load_clip(spec="mini")


def test_offline_download_is_a_one_line_error(monkeypatch, capsys):
    import open_clip.pretrained

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    # the real loading path with the download itself cut off: open_clip downloads before it builds the model
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", offline)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_url", offline)
    monkeypatch.setenv("SSL_TUTORIAL_CLIP", "ViT-B-32:laion2b_s34b_b79k")
    with pytest.raises(RuntimeError) as error:
        clip_like.load_clip()
    message = str(error.value)
    assert "could not load OpenCLIP ViT-B-32:laion2b_s34b_b79k" in message and "internet" in message
    assert "unset SSL_TUTORIAL_CLIP" in message and "\n" not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert capsys.readouterr().err == ""


def test_mini_clip_adapter_checks_words_and_encodes(monkeypatch):
    from ssl_tutorial.data.captions import Vocabulary
    from ssl_tutorial.methods.clip import MiniCLIP

    vocab = Vocabulary()
    torch.manual_seed(0)
    clip = clip_like.MiniCLIPAdapter(MiniCLIP(len(vocab), dim=8, widths=(4, 8), text_width=16).eval(), vocab)
    text = clip.encode_text(["a red circle", "a blue star"])
    image = clip.encode_image(torch.rand(2, 3, 16, 16))
    assert text.shape == image.shape == (2, 8)
    assert clip.tokenize(["a red circle"]).shape == (1, 16)
    with pytest.raises(ValueError, match="not in the vocabulary: zebra"):
        clip.tokenize(["a red zebra"])
    assert torch.equal(clip.tokenize("a red circle"), clip.tokenize(["a red circle"]))  # one sentence, not letters
    with pytest.raises(ValueError, match="no text given"):
        clip.encode_text([])


def test_load_clip_reads_the_setting(monkeypatch):
    from ssl_tutorial import artifacts

    monkeypatch.setattr(artifacts, "mini_clip", lambda cfg: ("model", "vocab", None))
    monkeypatch.delenv("SSL_TUTORIAL_CLIP", raising=False)
    clip = clip_like.load_clip(cfg=object())
    assert isinstance(clip, clip_like.MiniCLIPAdapter) and clip.model == "model"
    monkeypatch.setenv("SSL_TUTORIAL_CLIP", "mini")
    assert isinstance(clip_like.load_clip(cfg=object()), clip_like.MiniCLIPAdapter)
