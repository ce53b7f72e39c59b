"""Settings of the service: every option, its default and unit, from flags or environment.

Environment variables are ``LLM_AUTOSCALER_<NAME>`` (for example
``LLM_AUTOSCALER_TICK_SECONDS=0.5``); command-line flags of ``llm-autoscaler run`` override
them. Parsed once into a validated, frozen object; nothing else reads the environment.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLM_AUTOSCALER_", frozen=True, extra="forbid")

    kubeconfig: Path | None = Field(
        None, description="kubeconfig file; in-cluster config when unset"
    )
    identity: str = Field(
        default_factory=socket.gethostname, description="this replica's name in the leader Lease"
    )

    # metric source
    metrics_source: Literal["direct", "prometheus"] = Field(
        "direct", description="direct: scrape predictor pods and dcgm-exporters; prometheus: PromQL"
    )
    prometheus_url: str | None = Field(
        None, description="Prometheus base URL (metrics_source=prometheus)"
    )
    prometheus_bearer_token_file: Path | None = None
    prometheus_ca_file: Path | None = None
    prometheus_insecure_skip_verify: bool = False
    metric_prefix: str = Field(
        "vllm:", description="vLLM metric prefix (kserve_vllm: in some KServe builds)"
    )
    scrape_timeout_seconds: float = Field(2.0, gt=0, description="per-pod scrape timeout (direct)")
    scrape_concurrency: int = Field(64, gt=0, description="concurrent pod scrapes (direct)")
    stale_after_seconds: float = Field(
        15.0, gt=0, description="a sample older than this is missing, never a value"
    )
    dcgm_namespace: str = Field(
        "gpu-operator", description="namespace of the dcgm-exporter DaemonSet (direct)"
    )
    dcgm_selector: str = Field(
        "app=nvidia-dcgm-exporter", description="label selector of dcgm-exporter pods"
    )
    dcgm_port: int = Field(9400, description="dcgm-exporter port")

    # scaling loop
    tick_seconds: float = Field(1.0, gt=0, description="scaling loop period")
    target_timeout_seconds: float = Field(
        5.0, gt=0, description="one InferenceService's decide+act budget"
    )
    namespaces: tuple[str, ...] = Field((), description="only these namespaces (empty: all)")

    # reconciler
    reconcile_isvc: Literal["auto", "on", "off"] = Field(
        "auto",
        description="reconcile ISVCs; auto stands down when a KServe controller is present",
    )
    cluster_domain: str = "cluster.local"

    # servers
    listen_address: str = Field(
        "0.0.0.0", description="address of the HTTP server (own metrics, health)"
    )
    http_port: int = Field(
        8080, description="own metrics (/metrics) and probes (/healthz, /readyz)"
    )
    metrics_api_port: int = Field(6443, description="external metrics API (HTTPS)")
    metrics_api_enabled: bool = True
    debug_auth: bool = Field(
        True, description="/debug/decisions needs a token allowed to get the ISVC"
    )
    tls_cert_file: Path | None = Field(
        None, description="metrics API serving cert; self-signed when unset"
    )
    tls_key_file: Path | None = None

    # leader election
    leader_elect: bool = True
    lease_namespace: str = "llm-autoscaler"
    lease_name: str = "llm-autoscaler-leader"
    lease_duration_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.metrics_source == "prometheus" and not self.prometheus_url:
            raise ValueError("metrics_source=prometheus needs prometheus_url")
        if (
            not self.retry_period_seconds
            < self.renew_deadline_seconds
            < self.lease_duration_seconds
        ):
            raise ValueError(
                "need retry_period_seconds < renew_deadline_seconds < lease_duration_seconds"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self
