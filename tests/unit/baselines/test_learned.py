"""triplet-patch as a compared method: trained on the fit samples only; with no labelled defects it is exactly the
frozen backbone's patch kNN."""


def test_compare_options_reach_triplet_patch():
    from simsearch.baselines.compare import CompareSettings
    from simsearch.baselines.learned import build

    settings = CompareSettings(options={"triplet-patch": {"mode": "contrast", "epochs": 4, "patience": 1}})
    scorer = build(settings)
    assert (scorer.mode, scorer.epochs, scorer.patience) == ("contrast", 4, 1)
    assert build(CompareSettings(options={"triplet-head": {"epochs": 9}})).mode == "patch"


def test_the_joined_option_reads_compare_option_strings():
    from types import SimpleNamespace

    import pytest

    from simsearch.baselines.learned import build
    from simsearch.cli.compare import _options
    from simsearch.errors import InputError

    settings = SimpleNamespace(backbone="resnet18", weights=None, image_size=64, epochs=1, seed=0, batch_size=8,
                               device="cpu", options=_options(["triplet-patch.joined=false",
                                                               "triplet-patch.mode=contrast"]))
    scorer = build(settings)
    assert scorer.joined is False and scorer.mode == "contrast"
    assert build(SimpleNamespace(**{**vars(settings), "options": {}})).joined is True
    with pytest.raises(InputError, match="true or false"):  # a typo is refused, never read as the default
        build(SimpleNamespace(**{**vars(settings), "options": _options(["triplet-patch.joined=flase"])}))
