# ruff: noqa: E501  (exposition lines are as long as exporters write them)
"""Real-looking expositions, after ``../shared/fixtures/vllm-metrics.md`` and ``dcgm-metrics.md``.

* :data:`VLLM_V1`: a vLLM V1 pod with two data-parallel engines, as prometheus_client (which
  vLLM uses) renders it: alphabetical labels, counters as ``*_total`` plus ``*_created`` gauges,
  histograms with the V1 TTFT buckets.
* :data:`VLLM_V0`: the V0 engine (vLLM ~0.7): ``model_name`` only, ``gpu_cache_usage_perc``.
* :data:`DCGM`: dcgm-exporter 4.x with ``--kubernetes``: GPUs 0 and 1 held by one pod, GPU 2
  idle (no pod labels), label order fixed by the exporter's template.
* :data:`DCGM_OLD`: a 2.x-era exporter with ``--use-old-namespace``: ``pod_name``/
  ``pod_namespace``, lowercase ``uuid``, and ``pod=""`` on an idle GPU.

The TTFT counts of the two V1 engines are chosen so the quantiles can be checked by hand
(see ``test_extract.py``).
"""

from __future__ import annotations

TTFT_BOUNDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5)
TTFT_BOUNDS += (5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
# cumulative counts per bound (then +Inf); 20 requests per engine
TTFT_ENGINE0 = (0, 0, 0, 1, 3, 5, 8, 10, 14, 18, 19, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20)
TTFT_ENGINE1 = (0, 0, 0, 0, 1, 2, 4, 6, 10, 16, 18, 19, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20)
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def _le(bound: float) -> str:
    return repr(float(bound))


def _ttft_v1(prefix: str, engine: str, counts: tuple[int, ...], total: float) -> str:
    lines = [
        f'{prefix}time_to_first_token_seconds_bucket{{engine="{engine}",le="{_le(b)}",'
        f'model_name="{MODEL}"}} {float(c)}'
        for b, c in zip(TTFT_BOUNDS, counts, strict=True)
    ]
    lab = f'engine="{engine}",model_name="{MODEL}"'
    lines += [
        f'{prefix}time_to_first_token_seconds_bucket{{engine="{engine}",le="+Inf",'
        f'model_name="{MODEL}"}} {float(counts[-1])}',
        f"{prefix}time_to_first_token_seconds_count{{{lab}}} {float(counts[-1])}",
        f"{prefix}time_to_first_token_seconds_sum{{{lab}}} {total}",
    ]
    return "\n".join(lines) + "\n"


def vllm_v1(prefix: str = "vllm:") -> str:
    """The V1 pod's ``/metrics`` with metric prefix ``prefix``."""
    p = prefix
    e0 = f'engine="0",model_name="{MODEL}"'
    e1 = f'engine="1",model_name="{MODEL}"'
    return (
        f"""# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{{generation="0"}} 12345.0
python_gc_objects_collected_total{{generation="1"}} 2345.0
# HELP {p}num_requests_running Number of requests in model execution batches.
# TYPE {p}num_requests_running gauge
{p}num_requests_running{{{e0}}} 8.0
{p}num_requests_running{{{e1}}} 6.0
# HELP {p}num_requests_waiting Number of requests waiting to be processed.
# TYPE {p}num_requests_waiting gauge
{p}num_requests_waiting{{{e0}}} 3.0
{p}num_requests_waiting{{{e1}}} 2.0
# HELP {p}kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE {p}kv_cache_usage_perc gauge
{p}kv_cache_usage_perc{{{e0}}} 0.5
{p}kv_cache_usage_perc{{{e1}}} 0.25
# HELP {p}num_preemptions_total Cumulative number of preemption from the engine.
# TYPE {p}num_preemptions_total counter
{p}num_preemptions_total{{{e0}}} 4.0
{p}num_preemptions_total{{{e1}}} 1.0
# HELP {p}num_preemptions_created Cumulative number of preemption from the engine.
# TYPE {p}num_preemptions_created gauge
{p}num_preemptions_created{{{e0}}} 1.7382173358407154e+09
{p}num_preemptions_created{{{e1}}} 1.7382173358407154e+09
# HELP {p}prompt_tokens_total Number of prefill tokens processed.
# TYPE {p}prompt_tokens_total counter
{p}prompt_tokens_total{{{e0}}} 1.263648e+06
{p}prompt_tokens_total{{{e1}}} 998877.0
# HELP {p}request_success_total Count of successfully processed requests.
# TYPE {p}request_success_total counter
{p}request_success_total{{engine="0",finished_reason="stop",model_name="{MODEL}"}} 17.0
{p}request_success_total{{engine="0",finished_reason="length",model_name="{MODEL}"}} 3.0
# HELP {p}time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE {p}time_to_first_token_seconds histogram
"""
        + _ttft_v1(p, "0", TTFT_ENGINE0, 4.2)
        + _ttft_v1(p, "1", TTFT_ENGINE1, 6.5)
        + f"""# HELP {p}time_to_first_token_seconds_created Histogram of time to first token.
# TYPE {p}time_to_first_token_seconds_created gauge
{p}time_to_first_token_seconds_created{{{e0}}} 1.7382173358407154e+09
{p}time_to_first_token_seconds_created{{{e1}}} 1.7382173358407154e+09
# HELP {p}cache_config_info Information of the LLMEngine CacheConfig
# TYPE {p}cache_config_info gauge
{p}cache_config_info{{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.9",num_gpu_blocks="27217"}} 1.0
# HELP http_requests_total Total number of requests by method, status and handler.
# TYPE http_requests_total counter
http_requests_total{{handler="/v1/completions",method="POST",status="2xx"}} 40.0
"""
    )


VLLM_V1 = vllm_v1()

VLLM_V0 = """# HELP vllm:cache_config_info information of cache_config
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",cpu_offload_gb="0",enable_prefix_caching="False",gpu_memory_utilization="0.9",num_cpu_blocks="2048",num_gpu_blocks="7739",sliding_window="None",swap_space_bytes="4294967296"} 1.0
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 1.0
# HELP vllm:num_requests_swapped Number of requests swapped to CPU.
# TYPE vllm:num_requests_swapped gauge
vllm:num_requests_swapped{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0125
# HELP vllm:cpu_cache_usage_perc CPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:cpu_cache_usage_perc gauge
vllm:cpu_cache_usage_perc{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_sum{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.005",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.01",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.02",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.04",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.06",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.08",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.25",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.5",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.75",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="1.0",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="2.5",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="5.0",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="7.5",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="10.0",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
vllm:time_to_first_token_seconds_count{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 0.0
"""

_H100 = 'device="nvidia{i}",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1"'
_GPU = [
    f'gpu="{i}",UUID="GPU-{i}b2c3d4e-0000-1111-2222-33334444555{i}",'
    f'pci_bus_id="00000000:{0x18 + 0x10 * i:02X}:00.0",{_H100.format(i=i)},'
    'DCGM_FI_DRIVER_VERSION="580.105.08"'
    for i in range(3)
]
_POD = ',container="kserve-container",namespace="llm",pod="chat-predictor-7d9f-abcde",pod_uid=""'
DCGM_POD = ("llm", "chat-predictor-7d9f-abcde")

DCGM = f"""# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{{{_GPU[0]}{_POD}}} 1980
DCGM_FI_DEV_SM_CLOCK{{{_GPU[1]}{_POD}}} 1980
DCGM_FI_DEV_SM_CLOCK{{{_GPU[2]}}} 345
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{{{_GPU[0]}{_POD}}} 90
DCGM_FI_DEV_GPU_UTIL{{{_GPU[1]}{_POD}}} 70
DCGM_FI_DEV_GPU_UTIL{{{_GPU[2]}}} 0
# HELP DCGM_FI_DEV_MEMORY_TEMP Memory temperature (in C).
# TYPE DCGM_FI_DEV_MEMORY_TEMP gauge
DCGM_FI_DEV_MEMORY_TEMP{{{_GPU[0]}{_POD}}} 9223372036854775794
DCGM_FI_DEV_MEMORY_TEMP{{{_GPU[1]}{_POD}}} 9223372036854775794
DCGM_FI_DEV_MEMORY_TEMP{{{_GPU[2]}}} 9223372036854775794
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{{{_GPU[0]}{_POD}}} 613.611000
DCGM_FI_DEV_POWER_USAGE{{{_GPU[1]}{_POD}}} 512.300000
DCGM_FI_DEV_POWER_USAGE{{{_GPU[2]}}} 71.246000
# HELP DCGM_FI_PROF_GR_ENGINE_ACTIVE Ratio of time the graphics engine is active.
# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge
DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{_GPU[0]}{_POD}}} 0.912345
DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{_GPU[1]}{_POD}}} 0.687654
DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{_GPU[2]}}} 0.000000
"""

DCGM_OLD = """# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",uuid="GPU-aaaa",device="nvidia0",modelName="Tesla K80",Hostname="k80-node",container_name="main",pod_namespace="batch",pod_name="train-0"} 100
DCGM_FI_DEV_GPU_UTIL{gpu="1",uuid="GPU-bbbb",device="nvidia1",modelName="Tesla K80",Hostname="k80-node",container_name="",pod_namespace="",pod_name=""} 0
DCGM_FI_DEV_GPU_UTIL{gpu="2",uuid="GPU-cccc",device="nvidia2",modelName="Tesla K80",Hostname="k80-node",container_name="main",pod_namespace="batch",pod_name="train-0"} 4294967295
"""
