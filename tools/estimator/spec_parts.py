"""The run spec's smaller sections: ``target``, ``overheads`` (with ``disk``) and ``baseline``, and the strict
base every section shares. Kept apart from :mod:`.spec` (model and training, the cross-field rules, parsing)
so each module stays one screenful of rules; :mod:`.spec` re-exports them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

StackChange = Literal["none", "runtime", "major"]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class TargetSpec(_Strict):
    """How much to train: exactly one of tokens, steps, or epochs over a dataset."""

    target_tokens: PositiveInt | None = Field(default=None, le=10**16)
    target_steps: PositiveInt | None = Field(default=None, le=10**12)
    epochs: PositiveFloat | None = Field(default=None, le=10_000)
    dataset_tokens: PositiveInt | None = Field(default=None, le=10**16)

    @model_validator(mode="after")
    def _one_target(self) -> TargetSpec:
        chosen = [k for k in ("target_tokens", "target_steps", "epochs") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"set exactly one of target_tokens, target_steps, epochs (with dataset_tokens); got {chosen or 'none'}"
            )
        if self.epochs is not None and self.dataset_tokens is None:
            raise ValueError("epochs needs dataset_tokens")
        return self


class DiskItems(_Strict):
    """Disk sizes in GB (1e9 bytes) where known; the estimator fills the others and says so."""

    model_gb: NonNegativeFloat | None = None
    data_gb: NonNegativeFloat | None = None
    checkpoint_gb: NonNegativeFloat | None = Field(default=None, description="The largest checkpoint.")
    logs_gb: NonNegativeFloat | None = None
    temp_gb: NonNegativeFloat | None = Field(default=None, description="Image layers, pip/compile caches, scratch.")


class OverheadsSpec(_Strict):
    """Time that is not training, and host-side sizes."""

    setup_debug_hours: NonNegativeFloat | None = Field(default=None, le=10_000)
    eval_ckpt_overhead_hours: NonNegativeFloat | None = Field(default=None, le=10_000)
    eval_runtime_s: NonNegativeFloat | None = Field(default=None, le=10**7)
    eval_every_steps: PositiveInt | None = None
    disk: DiskItems = Field(default_factory=DiskItems)
    dataloader_gb: NonNegativeFloat | None = Field(default=None, description="Host RAM for data loader workers.")
    os_and_cache_gb: NonNegativeFloat | None = Field(default=None, description="Host RAM for the OS and page cache.")
    cheap_dph_total_usd: PositiveFloat | None = Field(
        default=None, description="Price of a cheap GPU to debug on first (evaluates the playbook decision rule)."
    )
    migration_hours: NonNegativeFloat = Field(default=0.5, le=1000, description="Time to move a debugged run up.")
    cuda_context_gb: NonNegativeFloat | None = Field(
        default=None, le=16, description="CUDA context + kernels in nvidia-smi's count (default 0.6: lazy loading, "
        "CUDA>=11.7; eager loading 1-1.4). Measure: nvidia-smi after torch.ones(1, device='cuda').")

    @model_validator(mode="after")
    def _eval_pair(self) -> OverheadsSpec:
        if (self.eval_runtime_s is None) != (self.eval_every_steps is None):
            raise ValueError("eval_runtime_s and eval_every_steps go together (or give eval_ckpt_overhead_hours)")
        return self


class BaselineSpec(_Strict):
    """A measured run to scale from (playbook 2.1): its throughput on a named GPU."""

    tokens_per_s: PositiveFloat = Field(le=1e12, description="Measured tokens/s of the whole baseline run.")
    gpu: str = Field(min_length=1, max_length=100, description="Catalogue name of the baseline GPU.")
    num_gpus: PositiveInt = Field(default=1, le=4096)
    stack_change: StackChange = Field(
        default="none", description="none: same code and stack; runtime: framework/runtime changed; major: new stack."
    )
