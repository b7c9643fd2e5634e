from simsearch.cli.demo import run_demo


def test_demo_finds_the_synthetic_defects(tmp_path):
    evaluation = run_demo(tmp_path / "demo")
    assert evaluation.image_auroc >= 0.95
    assert evaluation.extra["pixel_auroc"] >= 0.9
    assert (tmp_path / "demo" / "index" / "manifest.json").is_file()
    assert evaluation.threshold is not None and evaluation.confusion[0][0] >= 8  # good parts mostly pass
