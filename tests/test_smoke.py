"""``moe-ep smoke`` against a server that answers as vLLM 0.33.0 does (tests/openai_server.py):
a real answer exits 0 with TTFT and tokens/s; every way of not answering exits 1 with the reason."""

from __future__ import annotations

import re
import socket

import pytest

from moe_ep import cli

from .openai_server import Server

pytestmark = pytest.mark.conformance

SERVED = "Qwen/Qwen3-30B-A3B"  # stacks/Pulumi.dev.yaml serves the model under its id
KEY = "smoke-test-key-0123456789"


def smoke(capsys, monkeypatch, url: str, *extra: str, key: str | None = KEY) -> tuple[int, str, str]:
    if key is not None:
        monkeypatch.setenv("SMOKE_KEY", key)
    code = cli.main(["smoke", "--stack", "dev", "--url", url, "--api-key-env", "SMOKE_KEY", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_real_answer_exits_0_with_ttft_and_tokens_per_second(capsys, monkeypatch):
    with Server(SERVED, KEY) as url:
        code, out, _ = smoke(capsys, monkeypatch, url, "--max-tokens", "9")
    assert code == 0, out
    assert "ok: without the key: 401" in out and f"ok: /v1/models lists {SERVED}" in out
    timing = re.search(r"chat: HTTP 200; time to first token (\d+\.\d+) s; (\d+) tokens in (\d+\.\d+) s = (\d+\.\d) tokens/s", out)
    assert timing, out
    ttft, tokens, elapsed, rate = float(timing[1]), int(timing[2]), float(timing[3]), float(timing[4])
    assert tokens == 9  # from the usage chunk: --max-tokens reached the server
    assert 0 < ttft <= elapsed and rate == pytest.approx(tokens / elapsed, rel=0.01)
    assert "answer: Hello from a vLLM-shaped server." in out


def test_a_wrong_key_exits_1_and_says_401(capsys, monkeypatch):
    with Server(SERVED, KEY) as url:
        code, out, _ = smoke(capsys, monkeypatch, url, key="not-the-key")
    assert code == 1
    assert "FAILED: HTTP 401" in out and "rejected the stack's API key" in out


def test_a_server_that_answers_without_a_key_fails(capsys, monkeypatch):
    with Server(SERVED, None) as url:
        code, out, _ = smoke(capsys, monkeypatch, url)
    assert code == 1 and "answered a request without the API key" in out


def test_a_server_of_another_model_fails_naming_both(capsys, monkeypatch):
    with Server("deepseek-ai/DeepSeek-R1", KEY) as url:
        code, out, _ = smoke(capsys, monkeypatch, url)
    assert code == 1 and f"/v1/models lists deepseek-ai/DeepSeek-R1, not the stack's {SERVED}" in out


def test_a_slow_answer_times_out(capsys, monkeypatch):
    with Server(SERVED, KEY, token_delay_s=2.0) as url:
        code, out, _ = smoke(capsys, monkeypatch, url, "--timeout", "0.5")
    assert code == 1 and "within 0.5 s" in out


def test_nothing_listening_exits_1_naming_the_url(capsys, monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        url = f"http://127.0.0.1:{taken.getsockname()[1]}"
    code, out, _ = smoke(capsys, monkeypatch, url)
    assert code == 1 and f"cannot talk to {url}" in out


def test_an_unset_key_variable_is_bad_input(capsys, monkeypatch):
    monkeypatch.delenv("SMOKE_KEY", raising=False)
    code, _, err = smoke(capsys, monkeypatch, "http://127.0.0.1:9", key=None)
    assert code == 2 and "--api-key-env SMOKE_KEY" in err


def test_a_refused_port_forward_is_reported_without_the_response_headers():
    from kubernetes.client import ApiException

    from moe_ep.port_forward import _reason

    refused = ApiException(status=0, reason="Handshake status 403 Forbidden -+-+- {'content-length': '32', "
                                            "'server': 'proxy'} -+-+- resolve_deny: denied destination")
    assert _reason(refused) == "Handshake status 403 Forbidden: resolve_deny: denied destination"
    assert _reason(ApiException(status=500, reason="")) == "HTTP 500"
