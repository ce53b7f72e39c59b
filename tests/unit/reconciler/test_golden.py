"""Whole-object checks: the exact Deployment/Service/HPA for the LLM samples and a vLLM ISVC.

The expected objects were derived by hand from KServe's rules (see docs/reconciler.md), not
copied from the code's output: runtime-then-ISVC args, env merged by name with new ISVC vars
first (apimachinery's merge order), resources merged per key, ``{{.Name}}`` filled,
``INFERENCE_SERVICE_NAME`` appended, KServe's pod/container defaults, and the storage
initializer KServe's pod webhook would inject.
"""

from __future__ import annotations

from typing import Any

from .helpers import plan_with, sample_isvc, sample_runtime, vllm_isvc

HF = "config-runtimes__kserve-huggingfaceserver.yaml"
JSON = dict[str, Any]


def _meta(name: str, namespace: str, annotations: JSON, uid: str | None = None) -> JSON:
    owner: JSON = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "name": name,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    if uid:
        owner["uid"] = uid
    return {
        "name": f"{name}-predictor",
        "namespace": namespace,
        "labels": {
            "serving.kserve.io/inferenceservice": name,
            "component": "predictor",
            "app": f"isvc.{name}-predictor",
        },
        "annotations": annotations,
        "ownerReferences": [owner],
    }


def _initializer(uri: str) -> JSON:
    return {
        "name": "storage-initializer",
        "image": "kserve/storage-initializer:latest",
        "args": [uri, "/mnt/models"],
        "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "100m", "memory": "100Mi"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "kserve-provision-location", "mountPath": "/mnt/models"}],
    }


TCP_READINESS = {
    "tcpSocket": {"port": 8080},
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
POD_DEFAULTS = {
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "securityContext": {},
    "schedulerName": "default-scheduler",
}
STRATEGY = {
    "strategy": {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    },
    "revisionHistoryLimit": 10,
    "progressDeadlineSeconds": 600,
}


def test_huggingface_llama2_sample_deployment_whole_object() -> None:
    result = plan_with(sample_isvc("docs-samples-storage-hf__hf_isvc.yaml"), sample_runtime(HF))
    uri = "hf://meta-llama/Llama-2-7b-chat-hf"
    annotations = {
        "prometheus.kserve.io/port": "8080",
        "prometheus.kserve.io/path": "/metrics",
        "serving.kserve.io/deploymentMode": "Standard",
        "internal.serving.kserve.io/storage-initializer-sourceuri": uri,
    }
    meta = _meta("huggingface-llama2", "default", annotations)
    template_meta = {k: meta[k] for k in ("name", "namespace", "labels", "annotations")}
    gpu = {"cpu": "6", "memory": "24Gi", "nvidia.com/gpu": "1"}
    assert result.get("Deployment") == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "isvc.huggingface-llama2-predictor"}},
            "template": {
                "metadata": template_meta,
                "spec": {
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": "huggingfaceserver:replace-gpu",  # GPU -> "-gpu" tag
                            "args": [
                                "--model_name=huggingface-llama2",  # runtime's {{.Name}}
                                "--model_name=llama2",
                                "--model_dir=/mnt/models",
                                "--backend=huggingface",
                            ],
                            "env": [
                                {"name": "LMCACHE_USE_EXPERIMENTAL", "value": "True"},
                                {"name": "INFERENCE_SERVICE_NAME", "value": "huggingface-llama2"},
                            ],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "privileged": False,
                                "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "resources": {"limits": gpu, "requests": gpu},
                            "volumeMounts": [
                                {"name": "devshm", "mountPath": "/dev/shm"},
                                {
                                    "name": "kserve-provision-location",
                                    "mountPath": "/mnt/models",
                                    "readOnly": True,
                                },
                            ],
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "imagePullPolicy": "IfNotPresent",
                            "readinessProbe": TCP_READINESS,
                        }
                    ],
                    "volumes": [
                        {"name": "devshm", "emptyDir": {"medium": "Memory"}},
                        {"name": "kserve-provision-location", "emptyDir": {}},
                    ],
                    "serviceAccountName": "hfserviceacc",
                    **POD_DEFAULTS,
                    "initContainers": [_initializer(uri)],
                },
            },
            **STRATEGY,
        },
    }
    assert result.get("Service") == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": {"app": "isvc.huggingface-llama2-predictor"},
            "ports": [
                {
                    "name": "huggingface-llama2-predictor",
                    "protocol": "TCP",
                    "port": 80,
                    "targetPort": 8080,
                }
            ],
        },
    }


def test_qwen_cpu_sample_merges_env_by_name_and_resources_by_key() -> None:
    result = plan_with(
        sample_isvc("website-docs-text-generation__qwen-cpu-vllm-env.yaml"), sample_runtime(HF)
    )
    deployment = result.get("Deployment")
    assert deployment is not None
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    assert main["args"] == [
        "--model_name=qwen-cpu",
        "--model_name=qwen2",
        "--dtype=bfloat16",
        "--max-model-len=2048",
    ]
    assert main["env"] == [
        {"name": "VLLM_CPU_KVCACHE_SPACE", "value": "4"},
        {"name": "VLLM_CPU_OMP_THREADS_BIND", "value": "auto"},
        {"name": "VLLM_ENABLE_V1_MULTIPROCESSING", "value": "0"},
        {"name": "LMCACHE_USE_EXPERIMENTAL", "value": "True"},
        {"name": "INFERENCE_SERVICE_NAME", "value": "qwen-cpu"},
    ]
    assert main["resources"] == {
        "limits": {"cpu": "8", "memory": "16Gi"},
        "requests": {"cpu": "4", "memory": "8Gi"},
    }
    assert main["image"] == "huggingfaceserver:replace"  # no GPU: no "-gpu" tag


def test_vllm_isvc_on_bundled_runtime_whole_deployment_and_hpa() -> None:
    isvc = vllm_isvc(
        "llama",
        model={
            "args": ["--max-model-len=8192"],
            "env": [{"name": "VLLM_WORKER_MULTIPROC_METHOD", "value": "fork"}],
            "resources": {"limits": {"nvidia.com/gpu": "1", "memory": "24Gi"}},
        },
        minReplicas=2,
        maxReplicas=6,
        scaleTarget=70,
    )
    result = plan_with(isvc)
    assert result.failure is None
    assert result.runtime is not None
    assert (result.runtime.kind, result.runtime.name) == (
        "ClusterServingRuntime",
        "kserve-vllmserver",
    )
    uri = "hf://meta-llama/Llama-3.1-8B"
    annotations = {
        "prometheus.kserve.io/port": "8080",
        "prometheus.kserve.io/path": "/metrics",
        "serving.kserve.io/deploymentMode": "Standard",
        "internal.serving.kserve.io/storage-initializer-sourceuri": uri,
    }
    meta = _meta("llama", "llm", annotations, uid="uid-1")
    probe = {"failureThreshold": 3, "periodSeconds": 10, "successThreshold": 1}
    assert result.get("Deployment") == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 2,  # the HPA's minimum, so the HPA need not scale up first
            "selector": {"matchLabels": {"app": "isvc.llama-predictor"}},
            "template": {
                "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations")},
                "spec": {
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": "vllm/vllm-openai:latest",  # GPU: no "-cpu" repository
                            "command": ["python", "-m", "vllm.entrypoints.openai.api_server"],
                            "args": [
                                "--port=8080",
                                "--served-model-name=llama",
                                "--model=/mnt/models",
                                "--max-model-len=8192",
                            ],
                            "env": [
                                {"name": "HF_HOME", "value": "/tmp"},
                                {"name": "VLLM_CONFIG_ROOT", "value": "/tmp"},
                                {"name": "VLLM_WORKER_MULTIPROC_METHOD", "value": "fork"},
                                {"name": "INFERENCE_SERVICE_NAME", "value": "llama"},
                            ],
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "privileged": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "resources": {
                                "requests": {"cpu": "1", "memory": "2Gi"},
                                "limits": {"cpu": "1", "memory": "24Gi", "nvidia.com/gpu": "1"},
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/v1/models", "port": 8080},
                                **probe,
                                "timeoutSeconds": 5,
                            },
                            "startupProbe": {
                                "httpGet": {"path": "/v1/models", "port": 8080},
                                "failureThreshold": 60,
                                "periodSeconds": 30,
                                "successThreshold": 1,
                                "timeoutSeconds": 10,
                                "initialDelaySeconds": 30,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/health", "port": 8080},
                                **probe,
                                "timeoutSeconds": 5,
                            },
                            "volumeMounts": [
                                {"name": "devshm", "mountPath": "/dev/shm"},
                                {
                                    "name": "kserve-provision-location",
                                    "mountPath": "/mnt/models",
                                    "readOnly": True,
                                },
                            ],
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "imagePullPolicy": "IfNotPresent",
                        }
                    ],
                    "volumes": [
                        {"name": "devshm", "emptyDir": {"medium": "Memory"}},
                        {"name": "kserve-provision-location", "emptyDir": {}},
                    ],
                    **POD_DEFAULTS,
                    "initContainers": [_initializer(uri)],
                },
            },
            **STRATEGY,
        },
    }
    assert result.get("HorizontalPodAutoscaler") == {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "llama-predictor",
            },
            "minReplicas": 2,
            "maxReplicas": 6,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
            "behavior": {},
        },
    }
    service = result.get("Service")
    assert service is not None
    assert service["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}
    ]


def test_custom_container_sample_service_targets_its_first_port() -> None:
    result = plan_with(sample_isvc("docs-samples-v1beta1-custom__simple.yaml"))
    service, deployment = result.get("Service"), result.get("Deployment")
    assert service is not None
    assert deployment is not None
    assert service["spec"]["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 5000}]
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    assert main["readinessProbe"]["tcpSocket"] == {"port": 5000}
    assert "annotations" in deployment["metadata"]
    assert (
        "internal.serving.kserve.io/storage-initializer-sourceuri"
        not in (deployment["metadata"]["annotations"])
    )
