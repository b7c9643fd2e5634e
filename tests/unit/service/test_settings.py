"""Service settings, the token file, and `simsearch serve`'s refusals before it listens."""

import pytest

from simsearch.service.settings import ServiceSettings, TokenFileError, read_token_file


def test_token_file_rules(tmp_path):
    good = tmp_path / "token"
    good.write_text("  0123456789abcdef0123  \n")
    good.chmod(0o600)
    assert read_token_file(good) == "0123456789abcdef0123"
    short = tmp_path / "short"
    short.write_text("abc")
    short.chmod(0o600)
    with pytest.raises(TokenFileError, match="at least 16"):
        read_token_file(short)
    good.chmod(0o644)
    with pytest.raises(TokenFileError, match="other users"):
        read_token_file(good)
    with pytest.raises(TokenFileError, match="cannot read"):
        read_token_file(tmp_path / "missing")


def test_settings_refuse_nonsense():
    assert ServiceSettings().max_body_bytes > ServiceSettings().max_upload_bytes == 50 * 1024 * 1024
    with pytest.raises(ValueError):
        ServiceSettings(max_upload_bytes=0)
    with pytest.raises(ValueError):
        ServiceSettings(read_timeout_s=0)


def test_token_file_readable_by_the_group_is_refused_before_it_is_read(tmp_path):
    token = tmp_path / "token"
    token.write_text("0123456789abcdef0123\n")
    token.chmod(0o640)
    with pytest.raises(TokenFileError, match="other users .mode 640"):
        read_token_file(token)
    short = tmp_path / "short"
    short.write_bytes(b"\xff")  # neither long enough nor UTF-8: the mode is what is reported, so it was checked first
    short.chmod(0o604)
    with pytest.raises(TokenFileError, match="other users"):
        read_token_file(short)


def test_settings_refuse_nonsense_timeouts():
    for field in ("header_timeout_s", "min_body_rate"):
        with pytest.raises(ValueError):
            ServiceSettings(**{field: 0})
    with pytest.raises(ValueError):
        ServiceSettings(decode_budget_bytes=0)
