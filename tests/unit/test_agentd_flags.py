"""agentd's command line: flags reach the runtime's settings, the data dir keeps an
agent's identity and admits one process, and a Raft stop is found inside task groups."""

from __future__ import annotations

import os

import pytest

from agent.daemon import DataDirError, _first, build_parser, claim_data_dir, runtime_config
from agent.raft.errors import NodeStopped


def parse(*argv: str):
    return build_parser().parse_args(["--data-dir", "/tmp/unused", *argv])


def test_runtime_flags_reach_the_runtime_settings():
    config = runtime_config(parse("--container-log-max-size", "1Mi", "--container-log-max-files", "3",
                                  "--pod-pids-limit", "64", "--docker-network", "pods"))
    assert (config.container_log_max_size_bytes, config.container_log_max_files) == (1 << 20, 3)
    assert (config.pod_pids_limit, config.docker_network) == (64, "pods")
    assert runtime_config(parse("--pod-pids-limit", "0")).pod_pids_limit is None  # 0: no limit, as kubelet's -1


def test_defaults_are_kubelets():
    config = runtime_config(parse())
    assert (config.container_log_max_size_bytes, config.container_log_max_files, config.pod_pids_limit) == (
        10 << 20, 5, 1024)
    assert parse().scheduler_scoring == "LeastAllocated"


def test_impossible_runtime_settings_are_refused():
    with pytest.raises(ValueError):
        runtime_config(parse("--container-log-max-files", "0"))
    with pytest.raises(SystemExit):
        parse("--scheduler-scoring", "Random")


def test_a_data_dir_remembers_its_agent_and_admits_one_process(tmp_path):
    name, fd = claim_data_dir(str(tmp_path), "n1")
    assert name == "n1"
    with pytest.raises(DataDirError, match="in use"):
        claim_data_dir(str(tmp_path), "n1")
    os.close(fd)
    name, fd = claim_data_dir(str(tmp_path), None)
    assert name == "n1"  # restarted without --name: the same agent
    os.close(fd)
    with pytest.raises(DataDirError, match="belongs to agent 'n1'"):
        claim_data_dir(str(tmp_path), "n2")


def test_a_raft_stop_is_found_inside_task_groups():
    stopped = NodeStopped("storage failed")
    group = BaseExceptionGroup("outer", [ValueError("x"), BaseExceptionGroup("inner", [stopped])])
    assert _first(group, NodeStopped) is stopped
    assert _first(BaseExceptionGroup("g", [ValueError("x")]), NodeStopped) is None
