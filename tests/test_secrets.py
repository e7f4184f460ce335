"""Credentials never reach an output: one masking rule, every URL form, every command.

Before: a password given as `?password=…` in XMORE_DATABASE_URL showed in
`config`, `status --json` and error lines, and `config` printed a Qdrant URL's
`user:password` in clear.
"""

from __future__ import annotations

import json

import pytest

from tests.cli import fails, ok, xmore
from xmore_db.config import Settings, mask_secrets, mask_url_password, url_secrets

SECRET = "s3cr3t-Pw"

# (url, what must remain visible once masked)
DATABASE_FORMS = {
    "userinfo": (f"postgresql+psycopg://bob:{SECRET}@127.0.0.1:1/db", "postgresql+psycopg://bob:****@127.0.0.1:1/db"),
    "query password": (f"postgresql+psycopg://bob@127.0.0.1:1/db?password={SECRET}",
                       "postgresql+psycopg://bob@127.0.0.1:1/db?password=****"),
    "query password among others": (f"postgresql+psycopg://bob@127.0.0.1:1/db?sslmode=disable&password={SECRET}"
                                    "&connect_timeout=3",
                                    "?sslmode=disable&password=****&connect_timeout=3"),
    "query passwd": (f"postgresql+psycopg://bob@127.0.0.1:1/db?passwd={SECRET}", "?passwd=****"),
    "query pwd": (f"postgresql+psycopg://bob@127.0.0.1:1/db?pwd={SECRET}", "?pwd=****"),
    "query sslpassword": (f"postgresql+psycopg://bob@127.0.0.1:1/db?sslpassword={SECRET}", "?sslpassword=****"),
    "query PASSWORD upper case": (f"postgresql+psycopg://bob@127.0.0.1:1/db?PASSWORD={SECRET}", "?PASSWORD=****"),
    "percent-encoded userinfo": ("postgresql+psycopg://bob:s3cr%40t%2FPw@127.0.0.1:1/db",
                                 "postgresql+psycopg://bob:****@127.0.0.1:1/db"),
    "percent-encoded query": ("postgresql+psycopg://bob@127.0.0.1:1/db?password=s3cr%26t%3DPw", "?password=****"),
    "raw @ in password": ("postgresql+psycopg://bob:s3cr@t-Pw@127.0.0.1:1/db",
                          "postgresql+psycopg://bob:****@127.0.0.1:1/db"),
    "raw / in password": ("postgresql+psycopg://bob:s3cr/t-Pw@127.0.0.1:1/db",
                          "postgresql+psycopg://bob:****@127.0.0.1:1/db"),
    "empty user": (f"postgresql+psycopg://:{SECRET}@127.0.0.1:1/db", "postgresql+psycopg://:****@127.0.0.1:1/db"),
    "libpq keyword form": (f"host=127.0.0.1 port=1 password={SECRET} dbname=db", "password=**** dbname=db"),
    "libpq keyword form, quoted": (f"host=127.0.0.1 password='{SECRET} x' dbname=db", "password=**** dbname=db"),
}
QDRANT_FORMS = {
    "userinfo": (f"http://bob:{SECRET}@127.0.0.1:1", "http://bob:****@127.0.0.1:1"),
    "https userinfo, path": (f"https://bob:{SECRET}@qdrant.example:6333/base", "https://bob:****@qdrant.example:6333/base"),
    "api_key": (f"http://127.0.0.1:1/?api_key={SECRET}", "?api_key=****"),
    "apikey": (f"http://127.0.0.1:1/?apikey={SECRET}", "?apikey=****"),
    "api-key": (f"http://127.0.0.1:1/?api-key={SECRET}", "?api-key=****"),
    "key": (f"http://127.0.0.1:1/?key={SECRET}&timeout=5", "?key=****&timeout=5"),
    "token": (f"http://127.0.0.1:1/?token={SECRET}", "?token=****"),
    "access_token": (f"http://127.0.0.1:1/?access_token={SECRET}", "?access_token=****"),
}
ALL_FORMS = {f"db {k}": v for k, v in DATABASE_FORMS.items()} | {f"qdrant {k}": v for k, v in QDRANT_FORMS.items()}


def _secret_parts(url: str) -> list[str]:
    return [s for s in url_secrets(url) if len(s) >= 4]


@pytest.mark.parametrize(("url", "shown"), ALL_FORMS.values(), ids=ALL_FORMS.keys())
def test_each_form_is_masked(url, shown):
    masked = mask_url_password(url)
    assert shown in masked
    assert _secret_parts(url), "the form carries a secret"
    for secret in _secret_parts(url):
        assert secret not in masked
    assert mask_url_password(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://postgres@127.0.0.1:5432/test", "sqlite:////tmp/x/history.sqlite3",
    "http://localhost:6333", "https://qdrant.example:6333/?timeout=5", "file:/tmp/qdrant", ":memory:",
])
def test_urls_without_credentials_are_unchanged(url):
    assert mask_url_password(url) == url


def test_free_text_masks_urls_keywords_and_known_values():
    text = (f"cannot connect to database postgresql://bob@h/db?password={SECRET}: refused; "
            f"dsn 'host=h password={SECRET}' and http://u:{SECRET}@h:6333 said {SECRET!r} apikey")
    masked = mask_secrets(text, [SECRET])
    assert SECRET not in masked
    assert masked.startswith("cannot connect to database postgresql://bob@h/db?password=****: refused; ")
    assert "http://u:****@h:6333" in masked and "said '****'" in masked


def test_settings_masked_and_secrets():
    settings = Settings(qdrant_url=f"http://bob:{SECRET}@h:6333", qdrant_api_key="k3y-value",
                        database_url=f"postgresql+psycopg://bob@h/db?password={SECRET}")
    shown = json.dumps(settings.masked())
    assert SECRET not in shown and "k3y-value" not in shown
    assert {SECRET, "k3y-value"} <= set(settings.secrets())


def _assert_hidden(result, url: str) -> None:
    for secret in _secret_parts(url):
        assert secret not in result.stdout, result.stdout
        assert secret not in result.stderr, result.stderr


@pytest.mark.parametrize(("url", "shown"), DATABASE_FORMS.values(), ids=DATABASE_FORMS.keys())
def test_database_url_forms_in_config_status_and_errors(backend_env, monkeypatch, url, shown):
    monkeypatch.setenv("XMORE_DATABASE_URL", url)
    for args in (["config"], ["config", "--json"]):
        result = ok(*args)
        _assert_hidden(result, url)
        assert "****" in result.stdout
    for args in (["status"], ["status", "--json"], ["init"], ["streams", "list"]):
        result = xmore(*args)
        assert result.exit_code == 1, result.output  # nothing answers on port 1 / the URL is not one
        _assert_hidden(result, url)
        assert result.stderr.startswith(("Error: cannot connect to database ", "Error: invalid database URL "))
        assert "****" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.filterwarnings("ignore::UserWarning")  # qdrant-client warns of an API key over http: not ours to test
@pytest.mark.parametrize(("url", "shown"), QDRANT_FORMS.values(), ids=QDRANT_FORMS.keys())
def test_qdrant_url_forms_in_config_and_errors(backend_env, monkeypatch, url, shown):
    monkeypatch.setenv("XMORE_QDRANT_URL", url)
    monkeypatch.setenv("XMORE_QDRANT_API_KEY", "k3y-value")
    for args in (["config"], ["config", "--json"]):
        result = ok(*args)
        _assert_hidden(result, url)
        assert "k3y-value" not in result.stdout
        assert shown in result.stdout
    for args in (["status"], ["status", "--json"], ["init"]):
        result = xmore(*args)
        assert result.exit_code == 1, result.output  # no Qdrant server here
        _assert_hidden(result, url)
        assert "k3y-value" not in result.output
        assert result.stderr.startswith("Error: cannot reach Qdrant at ") and "****" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_an_error_quoting_the_bare_password_is_masked(backend_env, monkeypatch):
    """Whatever a driver or library says, the literal values given as secrets never show."""
    monkeypatch.setenv("XMORE_DATABASE_URL", f"postgresql+psycopg://bob:{SECRET}@127.0.0.1:1/db")
    monkeypatch.setenv("XMORE_NORMALIZE", f"bad-{SECRET}")  # a ConfigError message quoting the value
    line = fails("config")
    assert SECRET not in line and "unknown normalisation 'bad-****'" in line
