"""container.proxy evidence shows where a proxy is, never its credentials (issue 11), however
the proxy URL is written: without a scheme, with an unencoded `/`, `#` or `@` in the password.
And the secrets of containers' environments are available to a scrubber as one set."""

from __future__ import annotations

import json

import pytest

from handlers.check import run_check
from handlers.probes.network import proxy_endpoint
from handlers.redact import MASK, Redactor, environment_secrets
from handlers.results import Status
from tests.handlers.test_check_stack import finding, settings_for
from tests.rig.stack import OllamaRow

PROXIES = {
    "HTTP_PROXY": "alice:pa/ss#w0rd@127.0.0.1:3128",  # no scheme, `/` and `#` in the password
    "HTTPS_PROXY": "http://bob:s3c@r/t#x@127.0.0.1:3129/",  # `@` too
    "ALL_PROXY": "socks5h://carol:hunter22hunter@127.0.0.1:1080",
}
PASSWORDS = ("pa/ss#w0rd", "s3c@r/t#x", "hunter22hunter")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (PROXIES["HTTP_PROXY"], "127.0.0.1:3128"),
        (PROXIES["HTTPS_PROXY"], "http://127.0.0.1:3129"),
        (PROXIES["ALL_PROXY"], "socks5h://127.0.0.1:1080"),
        ("http://proxy.corp:3128", "http://proxy.corp:3128"),
        ("[::1]:3128", "[::1]:3128"),
        ("user:hunter22", "user:(not a port)"),
        ("", "(no host)"),
    ],
)
def test_proxy_endpoint_is_host_and_port_only(value: str, shown: str) -> None:
    assert proxy_endpoint(value) == shown


def test_environment_secrets_for_the_checks_scrubber() -> None:
    envs = [
        [f"{k}={v}" for k, v in PROXIES.items()],
        {"DB_PASSWORD": "Zq81xT0pW-db", "PATH": "/usr/bin"},
    ]
    secrets = environment_secrets(envs)
    assert set(PASSWORDS) | {"Zq81xT0pW-db"} <= secrets
    curl = "curl: (5) Unsupported proxy syntax in 'alice:pa/ss#w0rd@127.0.0.1:3128'"
    assert "pa/ss" not in Redactor.from_sources(extra=secrets).redact(curl)
    assert MASK in Redactor.from_sources(extra=secrets).redact(curl)


@pytest.mark.docker
def test_container_proxy_evidence_has_no_credentials(dify_stack_factory, fake_ollama) -> None:
    stack = dify_stack_factory(
        ollama_rows=[OllamaRow(base_url=fake_ollama.container_url())],
        extra_hosts=True,
        plugin_daemon_env=PROXIES,
    )
    stack.up()
    report = run_check(settings_for(stack, fake_ollama))
    proxy = finding(report, "container.proxy")
    assert proxy.status is Status.FAIL and "plugin_daemon" in proxy.summary
    assert "127.0.0.1:3128" in proxy.detail or "127.0.0.1:3129" in proxy.detail
    shown = json.dumps(proxy.to_json())
    for password in PASSWORDS:
        assert password not in shown and password.split("/")[0] not in shown
    for fragment in ("ss#w0rd", "r/t#x", "alice:", "bob:", "carol:"):
        assert fragment not in shown
