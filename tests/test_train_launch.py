"""Rank, world size and master detection for every launcher; the rendezvous timeout."""

from __future__ import annotations

import socket

import pytest
import torch

from nas.train.launch import (
    LaunchError,
    all_reduce,
    detect,
    expand_nodelist,
    init_process_group,
    lsf_compute_hosts,
    port_for_job,
)


def test_single_process_without_launcher_variables():
    env = detect({})
    assert (env.launcher, env.rank, env.world_size, env.local_rank) == ("single", 0, 1, 0)
    assert env.master_addr is None and not env.distributed


def test_torchrun_variables_win_over_slurm():
    env = detect(
        {
            "RANK": "3",
            "WORLD_SIZE": "4",
            "LOCAL_RANK": "1",
            "MASTER_ADDR": "n1",
            "MASTER_PORT": "29400",
            "SLURM_PROCID": "0",
            "SLURM_NTASKS": "1",
        }
    )
    assert (env.launcher, env.rank, env.world_size, env.local_rank) == ("torchrun", 3, 4, 1)
    assert (env.master_addr, env.master_port) == ("n1", 29400)


def test_slurm_rank_and_master_from_node_list_and_job_id():
    env = detect(
        {
            "SLURM_PROCID": "7",
            "SLURM_NTASKS": "12",
            "SLURM_LOCALID": "1",
            "SLURM_JOB_NODELIST": "gpu[07-09],login1",
            "SLURM_JOB_ID": "123456",
        }
    )
    assert (env.launcher, env.rank, env.world_size, env.local_rank) == ("slurm", 7, 12, 1)
    assert env.master_addr == "gpu07"
    assert env.master_port == port_for_job("123456")


def test_slurm_step_task_count_is_preferred_over_the_allocation():
    env = detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "1"})
    assert env.world_size == 1 and not env.distributed


def test_jsrun_namespace_and_lsf_master_skip_the_launch_node():
    env = detect(
        {
            "JSM_NAMESPACE_RANK": "5",
            "JSM_NAMESPACE_SIZE": "12",
            "JSM_NAMESPACE_LOCAL_RANK": "5",
            "LSB_MCPU_HOSTS": "batch3 1 a04n01 42 a04n02 42",
            "LSB_JOBID": "998877",
        }
    )
    assert (env.launcher, env.rank, env.world_size, env.local_rank) == ("jsrun", 5, 12, 5)
    assert env.master_addr == "a04n01"
    assert env.master_port == port_for_job("998877")


def test_open_mpi_variables_when_jsm_is_absent():
    env = detect(
        {
            "OMPI_COMM_WORLD_RANK": "2",
            "OMPI_COMM_WORLD_SIZE": "6",
            "OMPI_COMM_WORLD_LOCAL_RANK": "2",
            "LSB_HOSTS": "batch1 h1 h1 h1 h2 h2 h2",
            "LSB_JOBID": "5",
        }
    )
    assert (env.launcher, env.rank, env.world_size, env.local_rank) == ("mpi", 2, 6, 2)
    assert env.master_addr == "h1"


@pytest.mark.parametrize(
    ("environ", "hosts"),
    [
        ({"LSB_MCPU_HOSTS": "batch3 1 a04n01 42 a04n02 42"}, ["a04n01", "a04n02"]),
        ({"LSB_MCPU_HOSTS": "c1 16 c2 16"}, ["c1", "c2"]),
        ({"LSB_MCPU_HOSTS": "only 4"}, ["only"]),
        ({"LSB_HOSTS": "batch1 h1 h1 h2 h2"}, ["h1", "h2"]),
        ({}, []),
    ],
)
def test_lsf_compute_hosts(environ, hosts):
    assert lsf_compute_hosts(environ) == hosts


@pytest.mark.parametrize(
    ("nodelist", "hosts"),
    [
        ("node[01-03,07]", ["node01", "node02", "node03", "node07"]),
        ("a1,b[9-10]", ["a1", "b9", "b10"]),
        ("r[1-2]n[08-09]", ["r1n08", "r1n09", "r2n08", "r2n09"]),
        ("gpu[7]-ib,x", ["gpu7-ib", "x"]),
        ("single", ["single"]),
    ],
)
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize(
    ("nodelist", "message"),
    [
        ("node[01-03", "unbalanced"),
        ("node]1[", "unbalanced"),
        ("node[a-b]", "malformed range"),
        ("node[5-2]", "descending range"),
    ],
)
def test_expand_nodelist_rejects_malformed_lists(nodelist, message):
    with pytest.raises(LaunchError, match=message):
        expand_nodelist(nodelist)


def test_port_is_deterministic_high_and_below_the_ephemeral_range():
    ports = {port_for_job(str(job)) for job in range(2000)}
    assert all(15000 <= port < 32000 for port in ports)
    assert port_for_job("4242") == port_for_job("4242")
    assert len(ports) > 1900  # distinct jobs rarely share a port


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SLURM_PROCID": "2", "SLURM_NTASKS": "2"}, "is not below"),
        ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x'"),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "1"}, "no master address"),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, "no master port"),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "70000"}, "not a TCP"),
        (
            {"LSB_MCPU_HOSTS": "a 1 b", "JSM_NAMESPACE_RANK": "0", "JSM_NAMESPACE_SIZE": "2"},
            "pairs",
        ),
    ],
)
def test_detect_errors_name_the_variable(environ, message):
    with pytest.raises(LaunchError, match=message):
        detect(environ)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_rendezvous_fails_in_time_naming_address_port_and_rank():
    port = _free_port()
    env = detect(
        {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )
    with pytest.raises(LaunchError, match=rf"rank 1 of 2 .* at 127\.0\.0\.1:{port} within 1 s"):
        init_process_group(env, torch.device("cpu"), {"SPLINENAS_RENDEZVOUS_TIMEOUT": "1"})


def test_bad_timeout_variable_is_named():
    env = detect({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "2"})
    with pytest.raises(LaunchError, match="SPLINENAS_RENDEZVOUS_TIMEOUT='soon'"):
        init_process_group(env, torch.device("cpu"), {"SPLINENAS_RENDEZVOUS_TIMEOUT": "soon"})


def test_all_reduce_is_the_identity_on_one_process():
    assert all_reduce([1.0, 2.5], torch.device("cpu")) == [1.0, 2.5]
