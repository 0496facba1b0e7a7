# shellcheck shell=bash
# Environment of a splinenas training job on ALCF Polaris (PBS Professional +
# PALS mpiexec; 4 NVIDIA A100 per node, CUDA + NCCL, HPE Slingshot 11).
# Aurora has its own file: envs/aurora.sh.
#
# Sources:
#   ALCF, "NCCL" (Polaris): https://docs.alcf.anl.gov/polaris/applications-and-libraries/libraries/nccl/
#     (the settings below "lead to 2-3x performance improvement"; the conda
#     modules set them since October 2024; for some applications the plugin
#     hangs: then unset NCCL_NET_GDR_LEVEL NCCL_CROSS_NIC NCCL_COLLNET_ENABLE NCCL_NET)
#   ALCF, "Running Jobs on Polaris": https://docs.alcf.anl.gov/polaris/running-jobs/
#     (set_affinity_gpu_polaris.sh: gpu = 3 - local rank % 4, "due to
#     topology": GPU 3 is nearest cores 0-7; the trainer applies this order
#     through SPLINENAS_DEVICE_ORDER below; [cluster] device_order overrides it)
#
# A site copies two files: this one and envs/common.sh, side by side.
# The job script sources this file on the job's first node before mpiexec;
# PALS mpiexec hands the environment to every rank. [cluster] keys: backend =
# "pbs", gpus_per_node = 4, cores_per_node = 32, constraint = "system=polaris",
# filesystems = "home:eagle", env_file = "envs/polaris.sh".
#
# Site knobs (set before the job script sources this file, e.g. in ~/.bashrc):
#   SPLINENAS_MODULE_PATHS / SPLINENAS_MODULES   module use / module load
#   SPLINENAS_VENV        virtualenv with splinenas on top of the site's PyTorch
#                         (python -m venv --system-site-packages)
#   SPLINENAS_NCCL_PLUGIN_DIR, SPLINENAS_HWLOC_DIR   lib/ folders of aws-ofi-nccl
#                         and hwloc

# >>> SITE: ALCF's module path, module and library folders; they change with
# >>> ALCF's software stacks: take them from the pages above.
: "${SPLINENAS_MODULE_PATHS=/soft/modulefiles}"
: "${SPLINENAS_MODULES=conda}"
: "${SPLINENAS_NCCL_PLUGIN_DIR:=/soft/libraries/aws-ofi-nccl/v1.9.1-aws/lib}"
: "${SPLINENAS_HWLOC_DIR:=/soft/libraries/hwloc/lib}"

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" || return 1
splinenas_site polaris.sh || return 1

# ALCF's rule: local rank r drives GPU 3 - r.
: "${SPLINENAS_DEVICE_ORDER:=reversed}"
export SPLINENAS_DEVICE_ORDER

# NCCL between nodes through libfabric (aws-ofi-nccl), ALCF's measured settings.
for _splinenas_dir in "$SPLINENAS_HWLOC_DIR" "$SPLINENAS_NCCL_PLUGIN_DIR"; do
    if [[ -n $_splinenas_dir && :${LD_LIBRARY_PATH:-}: != *:$_splinenas_dir:* ]]; then
        export LD_LIBRARY_PATH=$_splinenas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    fi
done
unset _splinenas_dir
splinenas_nccl_slingshot
: "${NCCL_COLLNET_ENABLE:=1}"
export NCCL_COLLNET_ENABLE
splinenas_expect_bus_gbps 8
