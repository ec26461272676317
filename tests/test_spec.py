"""The stack schema and its cross-field rules, called directly."""

from __future__ import annotations

import copy

import pytest
import yaml
from pydantic import ValidationError

from components.spec import PoolSpec, ServiceSpec, StackError, pool_problems, problems, service_from_config

from .conftest import ROOT


def prod() -> dict:
    return copy.deepcopy(yaml.safe_load((ROOT / "stacks/Pulumi.prod.yaml").read_text())["config"]["moe-ep:service"])


def rules(service: dict) -> set[str]:
    return {p.rule for p in problems(ServiceSpec.model_validate(service))}


def test_prod_is_clean_and_derives_ep():
    spec = service_from_config(prod(), "prod")
    assert spec.decode.ep_size == 8
    assert spec.prefill.ep_size is None
    assert spec.prefill.tensor_parallel_size == 8
    assert spec.disaggregated


def test_tp_times_dp_must_cover_the_unit():
    s = prod()
    s["decode"]["data_parallel_size"] = 4
    found = problems(ServiceSpec.model_validate(s))
    assert [p.rule for p in found] == ["parallelism-covers-unit"]
    assert found[0].path == "moe-ep:service.decode.data_parallel_size"
    assert "DP should be 8" in found[0].expected


def test_multi_node_dp_counts_every_gpu_of_the_unit():
    s = prod()
    s["decode"].update(nodes_per_replica=2, data_parallel_size=16)
    assert rules(s) == set()
    s["decode"]["data_parallel_size"] = 8
    assert rules(s) == {"parallelism-covers-unit"}


@pytest.mark.parametrize("tp, ok", [(1, True), (2, True), (4, True), (8, True)])
def test_heads_divisible_by_tp(tp, ok):
    s = prod()
    s["prefill"]["tensor_parallel_size"] = tp
    s["prefill"]["data_parallel_size"] = 8 // tp
    assert ("heads-divisible-by-tp" in rules(s)) is not ok


def test_heads_not_divisible_by_tp_is_rejected():
    s = prod()
    s["gpu"]["per_node"] = 6
    s["prefill"].update(tensor_parallel_size=6, data_parallel_size=1)
    s["decode"].update(data_parallel_size=6, eplb=None)
    assert "heads-divisible-by-tp" in rules(s)


def test_eplb_needs_experts_divisible_by_ep_and_names_the_next_valid_count():
    s = prod()
    s["decode"]["eplb"] = {"num_redundant_experts": 3}
    found = problems(ServiceSpec.model_validate(s))
    assert [p.rule for p in found] == ["experts-divisible-by-ep"]
    assert "next valid count is 8" in found[0].expected
    s["decode"]["eplb"] = {"num_redundant_experts": 32}
    assert rules(s) == set()


def test_uneven_split_without_eplb_is_legal():
    s = prod()
    s["model"].update(architecture="kimi-k2", id="moonshotai/Kimi-K2-Instruct")  # 384 experts
    s["gpu"]["per_node"] = 8
    s["decode"].update(nodes_per_replica=5, data_parallel_size=40, eplb=None)  # 384 % 40 != 0
    assert rules(s) == set()


def test_redundant_experts_need_eplb():
    s = prod()
    s["decode"]["eplb"] = {"enabled": False, "num_redundant_experts": 8}
    assert rules(s) == {"redundant-experts-need-eplb"}


def test_eplb_needs_expert_parallel():
    s = prod()
    s["prefill"]["eplb"] = {}
    assert rules(s) == {"eplb-needs-ep"}


def test_tp_stays_within_a_node():
    s = prod()
    s["prefill"].update(tensor_parallel_size=16, nodes_per_replica=2)
    assert "tp-within-node" in rules(s)


def test_dbo_needs_deepep_dp_and_ep():
    s = prod()
    s["decode"]["enable_dbo"] = True
    assert rules(s) == {"dbo-needs-deepep-dp-ep"}
    s["decode"]["all2all_backend"] = "deepep_low_latency"
    assert rules(s) == set()


def test_pai_eas_aliases():
    pool = PoolSpec.model_validate({"TP_SIZE": 1, "DP_SIZE": 8, "EP_SIZE": 8})
    assert (pool.tensor_parallel_size, pool.data_parallel_size, pool.expert_parallel) == (1, 8, True)
    assert pool.ep_size == 8


def test_alias_and_name_together_are_ambiguous():
    with pytest.raises(ValidationError, match="only one of tensor_parallel_size and its alias TP_SIZE"):
        PoolSpec.model_validate({"TP_SIZE": 1, "tensor_parallel_size": 1})


def test_a_rule_broken_by_one_key_names_that_key():
    both = prod()
    both["decode"]["TP_SIZE"] = both["decode"]["tensor_parallel_size"]
    contradiction = prod()
    contradiction["decode"] |= {"EP_SIZE": 8, "expert_parallel": False}
    for service, line in [
        (both, "Pulumi.x.yaml: moe-ep:service.decode.TP_SIZE = 1: expected only one of tensor_parallel_size and its "
               "alias TP_SIZE (both are given) [schema]"),
        (contradiction, "Pulumi.x.yaml: moe-ep:service.decode.expert_parallel = False: expected true, or no "
                        "expert_parallel_size (EP_SIZE): it is set [schema]"),
    ]:
        with pytest.raises(StackError) as raised:
            service_from_config(service, "Pulumi.x.yaml")
        assert str(raised.value) == line


def test_ep_size_with_expert_parallel_false_is_contradictory():
    with pytest.raises(ValidationError, match=r"true, or no expert_parallel_size \(EP_SIZE\)"):
        PoolSpec.model_validate({"EP_SIZE": 8, "expert_parallel": False})


def test_ep_size_must_match_tp_times_dp():
    s = prod()
    s["decode"]["EP_SIZE"] = 16
    assert rules(s) == {"ep-is-tp-times-dp"}


def test_replicas_may_be_zero_but_not_negative():
    s = prod()
    s["decode"]["replicas"] = 0
    service_from_config(s, "x")
    s["decode"]["replicas"] = -1
    with pytest.raises(StackError, match=r"moe-ep:service\.decode\.replicas = -1"):
        service_from_config(s, "x")


@pytest.mark.parametrize("name", ["DeepSeek", "a_b", "-x", "x-", "a" * 41, "", "30b-qwen", "7"])
def test_names_are_dns_labels(name):
    s = prod()
    s["name"] = name
    with pytest.raises(StackError, match=r"moe-ep:service\.name"):
        service_from_config(s, "x")


def test_a_name_starting_with_a_digit_is_refused_as_the_api_server_would():
    # On the live plane LWS's webhook rejects LeaderWorkerSet `30b-qwen-decode` (DNS-1035: a letter
    # first; Kubernetes 1.36 itself accepts Service `30b-qwen-router`); the preview used to pass it.
    s = prod()
    s["name"] = "30b-qwen"
    with pytest.raises(StackError, match=r"moe-ep:service\.name = '30b-qwen'.*DNS-1035"):
        service_from_config(s, "x")
    s["name"] = "qwen-30b"
    service_from_config(s, "x")


def test_unknown_keys_and_catalog_keys_are_rejected_with_their_path():
    s = prod()
    s["decode"]["tensor_paralel_size"] = 1
    s["gpu"]["product"] = "h300"
    with pytest.raises(StackError) as error:
        service_from_config(s, "Pulumi.x.yaml")
    paths = {p.path for p in error.value.problems}
    assert paths == {"moe-ep:service.decode.tensor_paralel_size", "moe-ep:service.gpu.product"}
    assert "Pulumi.x.yaml: moe-ep:service.gpu.product = 'h300'" in str(error.value)


def test_pool_problems_is_per_role():
    spec = ServiceSpec.model_validate(prod())
    assert pool_problems("decode", spec.decode, spec) == []


@pytest.mark.parametrize("key, value", [("id", "deepseek-ai/DeepSeek-R1\nrm"), ("id", "a b"), ("served_model_name", "r1 chat")])
def test_model_names_are_single_tokens(key, value):
    s = prod()
    s["model"][key] = value
    with pytest.raises(StackError, match=rf"moe-ep:service\.model\.{key}"):
        service_from_config(s, "x")
