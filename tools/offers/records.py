"""Vast.ai offers in: every record shape Vast (or a mirror of it) prints, normalized into one :class:`Offer`.

Why a normalizer and not the raw dicts: Vast's units are easy to get wrong (``gpu_ram`` is MiB per GPU,
``total_flops`` is FP32 summed over the offer's GPUs, ``dph_total`` includes storage at whatever size
the search was priced for, bandwidth is billed per TB), keys drift between API versions
(``reliability2`` → ``reliability``) and mirrors drop some (500.farm deletes ``dph_total``). Every
conversion lives here once, with units in the field names, so the option table cannot mix them up.
Odd records are skipped with a reason instead of crashing a table of thousands of offers.
Live search and its cache are in :mod:`gpu_preflight.tools.offers.live`.

Imported by the telemetry room on purpose: calibration takes an ``OfferSet`` to rank a switch.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from gpu_preflight.tools.common.errors import PreflightError, preview
from gpu_preflight.tools.common.files import read_text_file
from gpu_preflight.tools.common.limits import loads_json
from gpu_preflight.tools.offers.capture_time import CapturedAtSource, age_text, parse_time

__all__ = ["CapturedAtSource", "Offer", "OfferSet", "SkippedRecord", "age_text", "dph_total_for_storage",
           "load_offers", "normalize_offer", "offers_from_json", "offers_from_records", "parse_time"]

MIB_BYTES = 1_048_576
HOURS_PER_MONTH = 720  # Vast bills storage per 30-day month: storage_total_cost = storage_cost * GB / 720
ALLOWED_SHAPES = (
    "a JSON list of offers (`vastai search offers ... --raw`), an API object {\"offers\": [...]} "
    "or one offer object"
)
# Keys only a rented instance (`vastai show instance(s) --raw`) carries; two or more => not an offer.
_INSTANCE_KEYS = frozenset({"ssh_host", "ssh_idx", "jupyter_token", "actual_status", "intended_status",
                            "cur_state", "local_ipaddrs", "machine_dir_ssh_port"})
_TIME_KEYS = ("captured_at", "timestamp", "fetched_at")
# Keys whose value lands in a named Offer field; every other key (including the ones only read to derive
# or cross-check a value, such as ``search`` or ``storage_total_cost``) is kept verbatim in ``Offer.extra``.
_MODELLED_KEYS = frozenset({
    "id", "gpu_name", "num_gpus", "gpu_ram", "gpu_frac", "total_flops", "gpu_mem_bw", "pcie_bw", "inet_up",
    "inet_down", "cpu_ram", "cpu_cores_effective", "disk_space", "disk_bw", "dph_base", "dph_total", "storage_cost",
    "internet_up_cost_per_tb", "internet_down_cost_per_tb", "inet_up_cost", "inet_down_cost", "reliability",
    "reliability2", "cuda_max_good", "driver_version", "is_bid", "bid", "verified", "geolocation", "datacenter",
    "hosting_type"})
_EARLIEST_CAPTURE = datetime(2015, 1, 1, tzinfo=UTC)  # older derived capture times are nonsense


class Offer(BaseModel):
    """One Vast offer with units in every name; ``extra`` keeps the keys not modelled here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offer_id: int = Field(description="Vast `id` (= ask_contract_id), the id `create instance` takes")
    gpu_name: str = Field(description="Vast's GPU name, e.g. 'RTX 4090', 'H100 SXM'")
    num_gpus: int = Field(ge=1)
    gpu_ram_gb_per_gpu: float = Field(gt=0, description="GB (1e9 bytes) per GPU; Vast `gpu_ram` is MiB")
    gpu_total_ram_gb: float = Field(gt=0, description="num_gpus * gpu_ram_gb_per_gpu")
    gpu_frac: float | None = Field(default=None, description="the offer's share of the host's GPUs")
    total_flops_fp32_tflops: float | None = Field(
        default=None, description="FP32 CUDA-core TFLOPS summed over the offer's GPUs; NOT tensor bf16")
    gpu_mem_bw_gbps: float | None = Field(default=None, description="GB/s, measured by Vast; can be absurd")
    pcie_bw_gbps: float | None = Field(default=None, description="GB/s host<->GPU, measured")
    inet_up_mbps: float | None = Field(default=None, description="Mbit/s, measured")
    inet_down_mbps: float | None = Field(default=None, description="Mbit/s, measured")
    cpu_ram_host_gb: float | None = Field(default=None, description="host RAM, GB = Vast `cpu_ram` / 1000")
    cpu_ram_gb: float | None = Field(default=None, description="the offer's share ~ host RAM * gpu_frac")
    cpu_cores_effective: float | None = Field(default=None, description="vCPUs the offer gets")
    disk_space_gb: float | None = Field(default=None, description="GB that can be allocated")
    disk_bw_mbps: float | None = Field(default=None, description="MB/s (megaBYTES), measured disk read")
    dph_base_usd: float = Field(ge=0, description="$/h GPU rent for the whole offer, storage excluded")
    dph_total_usd: float = Field(gt=0, description="$/h = dph_base + storage_cost * allocated_gb / 720")
    storage_cost_usd_per_gb_month: float | None = Field(default=None, ge=0)
    storage_gb_allocated: float | None = Field(default=None, description="GB the record's dph_total priced")
    inet_up_cost_usd_per_tb: float | None = Field(default=None, ge=0)
    inet_down_cost_usd_per_tb: float | None = Field(default=None, ge=0)
    reliability: float | None = Field(default=None, ge=0, le=1)
    cuda_max_good: float | None = None
    driver_version: str | None = None
    interruptible: bool = False
    verified: bool | None = None
    geolocation: str | None = None
    datacenter: bool | None = None
    hosting_type: int | None = None
    captured_at: datetime | None = Field(default=None, description="when Vast served it: end_date - duration")
    extra: SkipValidation[dict[str, Any]] = Field(default_factory=dict)  # raw JSON, kept as sent
    warnings: list[str] = Field(default_factory=list)


class SkippedRecord(BaseModel):
    """A record left out of the set, and why, so a user sees what happened to it."""

    index: int
    offer_id: int | None = None
    reason: str

    def message(self) -> str:
        who = f"record #{self.index}" + (f" (offer {self.offer_id})" if self.offer_id is not None else "")
        return f"{who} skipped: {self.reason}"


class OfferSet(BaseModel):
    """Offers from one source, the records skipped, and how old the offers are."""

    offers: list[Offer]
    skipped: list[SkippedRecord] = Field(default_factory=list)
    captured_at: datetime | None = Field(default=None, description="oldest capture time, so ages never flatter")
    captured_at_source: CapturedAtSource | None = None
    source: str = "inline"
    bundled_sample: bool = Field(default=False, description="the bundled old snapshot, not a file or a live search")


def dph_total_for_storage(offer: Offer, storage_gb: float) -> float:
    """$/h for this offer with ``storage_gb`` allocated: the record's dph_total is priced for the
    search's storage size (CLI default 5 GB), not for the run's disk. Without a storage price the
    recorded ``dph_total_usd`` is returned (the offer's warnings say it could not be repriced)."""
    if not isinstance(storage_gb, int | float) or isinstance(storage_gb, bool) or not math.isfinite(storage_gb) \
            or storage_gb < 0:
        raise PreflightError("storage_gb", storage_gb, "a finite number of GB >= 0")
    if offer.storage_cost_usd_per_gb_month is None:
        return offer.dph_total_usd
    return offer.dph_base_usd + offer.storage_cost_usd_per_gb_month * storage_gb / HOURS_PER_MONTH


def load_offers(path_or_text: str | Path) -> OfferSet:
    """Offers from a file path or from JSON text (anything starting with ``[`` or ``{``)."""
    mtime: datetime | None = None
    if isinstance(path_or_text, str) and path_or_text.lstrip()[:1] in ("[", "{"):
        text, source = path_or_text, "inline"
    else:
        path = Path(path_or_text)
        source = str(path)
        text = read_text_file(path, field="offers", kind="offers")
        try:
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except OSError:
            mtime = None
    data = loads_json(text, field="offers", source=Path(source).name, allowed=ALLOWED_SHAPES, numbers=False)
    return offers_from_json(data, source=source, file_mtime=mtime)


def offers_from_json(data: Any, *, source: str = "inline", file_mtime: datetime | None = None,
                     interruptible: bool = False) -> OfferSet:
    """Offers from already-parsed JSON in any accepted shape (used by files, live search and benches)."""
    field = f"offers ({source})"
    file_time: datetime | None = None
    if isinstance(data, dict):
        if "instances" in data or len(_INSTANCE_KEYS & data.keys()) >= 2:
            raise PreflightError(field, "a `show instance` record (a rented instance, not an offer)", ALLOWED_SHAPES,
                                 "offers come from `vastai search offers ... --raw`")
        if data.get("error") is True or ("error" in data and "msg" in data):
            raise PreflightError(field, f"a Vast error: {data.get('msg', data.get('error'))}", ALLOWED_SHAPES)
        file_time = next((t for t in (parse_time(data.get(k)) for k in _TIME_KEYS) if t is not None), None)
        if "offers" not in data and "gpu_name" not in data and "id" not in data:
            raise PreflightError(field, f"an object with keys {', '.join(sorted(map(str, data))[:5])}", ALLOWED_SHAPES)
        records = data.get("offers", [data])
        if not isinstance(records, list):
            raise PreflightError(f"{field}.offers", f"a JSON {_json_type(records)}", "a list of offer objects")
    elif isinstance(data, list):
        records = data
    else:
        raise PreflightError(field, f"a JSON {_json_type(data)}", ALLOWED_SHAPES)
    if not records:
        raise PreflightError(field, "an empty list", "at least one offer")
    offers_set = offers_from_records(records, source=source, interruptible=interruptible)
    if file_time is not None:
        return offers_set.model_copy(update={"captured_at": file_time, "captured_at_source": "file"})
    if offers_set.captured_at is None and file_mtime is not None:
        return offers_set.model_copy(update={"captured_at": file_mtime, "captured_at_source": "file_mtime"})
    return offers_set


def offers_from_records(records: list[Any], *, source: str = "inline", interruptible: bool = False) -> OfferSet:
    """Normalize each record; skip odd ones with a reason. Raises only when none is usable."""
    offers: list[Offer] = []
    skipped: list[SkippedRecord] = []
    for index, raw in enumerate(records):
        try:
            offers.append(normalize_offer(raw, interruptible=interruptible))
        except _Skip as exc:
            raw_id = raw.get("id") if isinstance(raw, dict) else None
            offer_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
            skipped.append(SkippedRecord(index=index, offer_id=offer_id, reason=str(exc)))
    if not offers:
        first = skipped[0].message() if skipped else "no records"
        raise PreflightError(f"offers ({source})", f"{len(records)} record(s), none usable; {first}",
                             "at least one offer with id, gpu_name, num_gpus, gpu_ram and a price")
    captured = min((o.captured_at for o in offers if o.captured_at is not None), default=None)
    return OfferSet(offers=offers, skipped=skipped, captured_at=captured,
                    captured_at_source="records" if captured else None, source=source)


class _Skip(Exception):
    """A record that cannot become an offer; the message is the reason shown to the user."""


class _Record:
    """Typed reads from one raw record, collecting what looked odd."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.warnings: list[str] = []

    def number(self, key: str, *, skip_if_bad: bool = False, low: float = 0.0, low_open: bool = False,
               high: float = math.inf) -> float | None:
        """A finite number in [low, high] (or (low, high]); missing -> None; odd -> skip or warn."""
        value = self.raw.get(key)
        if value is None:
            return None
        cls = type(value)  # fast path first: a table may normalize thousands of offers
        if (cls is float or cls is int) and (low < value or (value == low and not low_open)) \
                and value <= high and value != math.inf:
            return float(value)
        if not isinstance(value, int | float) or isinstance(value, bool):
            problem = "not a number"
        elif not math.isfinite(value):
            problem = "not finite"
        elif value < low or (low_open and value == low):
            problem = f"must be {'>' if low_open else '>='} {low:g}"
        elif value > high:
            problem = f"must be <= {high:g}"
        else:
            return float(value)
        text = f"{key}={preview(value)}: {problem}"
        if skip_if_bad:
            raise _Skip(text)
        self.warnings.append(f"ignored {text}")
        return None

    def integer(self, key: str, *, low: int) -> int:
        value = self.raw.get(key)
        if value is None:
            raise _Skip(f"{key} missing")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise _Skip(f"{key}={preview(value)}: must be an integer >= {low}")
        return value

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            self.warnings.append(f"ignored {key}={preview(value)}: not a non-empty string")
        return value.strip() if isinstance(value, str) and value.strip() else None

    def flag(self, key: str) -> bool | None:
        value = self.raw.get(key)
        return value if isinstance(value, bool) else None

    def first_number(self, *keys: str, high: float = math.inf) -> float | None:
        for key in keys:
            value = self.number(key, high=high)
            if value is not None:
                return value
        return None


def normalize_offer(raw: Any, *, interruptible: bool = False) -> Offer:
    """One raw Vast record -> :class:`Offer`. Raises the private ``_Skip`` with the reason if unusable."""
    if not isinstance(raw, dict):
        raise _Skip(f"not a JSON object but a JSON {_json_type(raw)}")
    if len(_INSTANCE_KEYS & raw.keys()) >= 2:
        raise _Skip("a `show instance` record (a rented instance), not an offer")
    rec = _Record(raw)
    offer_id = rec.integer("id", low=0)
    gpu_name = raw.get("gpu_name")
    if not isinstance(gpu_name, str) or not gpu_name.strip():
        raise _Skip(f"gpu_name={preview(gpu_name)}: must be a non-empty string")
    num_gpus = rec.integer("num_gpus", low=1)
    gpu_ram_mib = rec.number("gpu_ram", skip_if_bad=True, low_open=True)
    if gpu_ram_mib is None:
        raise _Skip("gpu_ram missing")
    gpu_ram_gb = gpu_ram_mib * MIB_BYTES / 1e9  # MiB per GPU -> GB (1e9 bytes)
    total_mib = rec.first_number("gpu_total_ram", "gpu_totalram")
    if total_mib is not None and abs(total_mib - num_gpus * gpu_ram_mib) > 1:
        rec.warnings.append(f"gpu_total_ram {total_mib:g} MiB != num_gpus x gpu_ram = {num_gpus * gpu_ram_mib:g}; "
                            "used num_gpus x gpu_ram")
    base, total, storage, allocated = _prices(rec)
    gpu_frac = rec.number("gpu_frac", low=0, low_open=True, high=1)
    host_mb = rec.number("cpu_ram")
    host_gb = host_mb / 1000 if host_mb is not None else None
    cores_eff = rec.number("cpu_cores_effective")
    cores = rec.number("cpu_cores", low=0, low_open=True)
    share = gpu_frac
    if share is None and cores_eff is not None and cores is not None and cores_eff <= cores:
        share = cores_eff / cores
        rec.warnings.append("gpu_frac missing: CPU RAM share taken as cpu_cores_effective / cpu_cores")
    if host_gb is not None and share is None:
        rec.warnings.append("gpu_frac missing: the offer's CPU RAM share is unknown (cpu_ram_gb left empty)")
    rel = rec.first_number("reliability", "reliability2", high=1)
    verified = rec.flag("verified")
    verification = raw.get("verification")
    if verified is None and isinstance(verification, str):
        verified = verification == "verified"
    hosting_type = raw.get("hosting_type")
    hosting = hosting_type if isinstance(hosting_type, int) and not isinstance(hosting_type, bool) else None
    datacenter = rec.flag("datacenter")
    if datacenter is None and hosting is not None:
        datacenter = hosting == 1
    bid = raw.get("is_bid") is True or raw.get("bid") is True or interruptible
    return Offer(
        offer_id=offer_id, gpu_name=gpu_name.strip(), num_gpus=num_gpus, gpu_ram_gb_per_gpu=gpu_ram_gb,
        gpu_total_ram_gb=num_gpus * gpu_ram_gb, gpu_frac=gpu_frac,
        total_flops_fp32_tflops=rec.number("total_flops"), gpu_mem_bw_gbps=rec.number("gpu_mem_bw"),
        pcie_bw_gbps=rec.number("pcie_bw"), inet_up_mbps=rec.number("inet_up"),
        inet_down_mbps=rec.number("inet_down"), cpu_ram_host_gb=host_gb,
        cpu_ram_gb=host_gb * share if host_gb is not None and share is not None else None,
        cpu_cores_effective=cores_eff, disk_space_gb=rec.number("disk_space"), disk_bw_mbps=rec.number("disk_bw"),
        dph_base_usd=base, dph_total_usd=total, storage_cost_usd_per_gb_month=storage,
        storage_gb_allocated=allocated, inet_up_cost_usd_per_tb=_per_tb(rec, "up"),
        inet_down_cost_usd_per_tb=_per_tb(rec, "down"), reliability=rel, cuda_max_good=rec.number("cuda_max_good"),
        driver_version=rec.text("driver_version"), interruptible=bid, verified=verified,
        geolocation=rec.text("geolocation"), datacenter=datacenter, hosting_type=hosting,
        captured_at=_record_time(rec), extra=_unmodelled(raw), warnings=rec.warnings,
    )


def _unmodelled(raw: dict[str, Any]) -> dict[str, Any]:
    extra = dict(raw)  # a C-level copy, then drop the modelled keys: faster than filtering every key
    for key in _MODELLED_KEYS & raw.keys():
        del extra[key]
    return extra


def _prices(rec: _Record) -> tuple[float, float, float | None, float | None]:
    """(dph_base, dph_total, storage $/GB/month, allocated GB), filling in what mirrors drop (see module doc)."""
    base = rec.number("dph_base", skip_if_bad=True)
    total = rec.number("dph_total", skip_if_bad=True)
    storage = rec.number("storage_cost")
    search = rec.raw.get("search")
    sub = _Record(search if isinstance(search, dict) else {})
    disk_hourly = rec.number("storage_total_cost")
    if disk_hourly is None:
        disk_hourly = sub.number("diskHour")
    allocated: float | None = None
    if storage and disk_hourly is not None:
        allocated = round(disk_hourly * HOURS_PER_MONTH / storage, 3)
    elif storage and base is not None and total is not None and total >= base:
        allocated = round((total - base) * HOURS_PER_MONTH / storage, 3)
        disk_hourly = total - base
    if total is None:
        search_total = sub.number("totalHour", low=0, low_open=True)
        if search_total is not None:
            total = search_total
            rec.warnings.append("dph_total missing (mirrors such as 500.farm drop it): used search.totalHour")
        elif base is not None and disk_hourly is not None:
            total = base + disk_hourly
            rec.warnings.append("dph_total missing: recomputed as dph_base + storage per hour")
        elif base is not None:
            total = base
            rec.warnings.append("dph_total and the storage price missing: dph_total = dph_base (storage unpriced)")
        else:
            raise _Skip("no price: dph_total, search.totalHour and dph_base all missing")
    if base is None:
        base = sub.number("gpuCostPerHour")
        if base is None and disk_hourly is not None:
            base = max(total - disk_hourly, 0.0)
        if base is None:
            base = total
            rec.warnings.append("dph_base missing: taken as dph_total (storage share unknown)")
    if total <= 0:
        raise _Skip(f"dph_total={preview(total)}: must be > 0")
    if disk_hourly is not None and abs(base + disk_hourly - total) > 1e-6 + 1e-3 * total:
        rec.warnings.append(f"dph_total {total:.6g} != dph_base + storage {base + disk_hourly:.6g}")
    if storage is None:
        rec.warnings.append("storage_cost missing: cannot reprice for the run's disk")
    return base, total, storage, allocated


def _per_tb(rec: _Record, way: str) -> float | None:
    """Bandwidth $/TB: ``internet_*_cost_per_tb`` (newer API) or ``inet_*_cost`` ($/GB, GB = TB/1024) x 1024."""
    per_tb = rec.number(f"internet_{way}_cost_per_tb")
    per_gb = rec.number(f"inet_{way}_cost")
    if per_tb is None and per_gb is not None:
        per_tb = per_gb * 1024
    elif per_tb is not None and per_gb is not None and abs(per_gb * 1024 - per_tb) > 1e-6 + 1e-3 * per_tb:
        rec.warnings.append(f"internet_{way}_cost_per_tb {per_tb:g} != inet_{way}_cost x 1024 = {per_gb * 1024:g}")
    return per_tb


def _record_time(rec: _Record) -> datetime | None:
    """Vast serves ``duration = end_date - now``, so ``end_date - duration`` is when the record was served
    (on the 500.farm capture it lands 0.07 s after the exporter's own timestamp)."""
    end, duration = rec.raw.get("end_date"), rec.raw.get("duration")
    if not isinstance(end, int | float) or not isinstance(duration, int | float):
        return None
    try:
        when = datetime.fromtimestamp(end - duration, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return when if _EARLIEST_CAPTURE <= when <= datetime.now(UTC) + timedelta(days=1) else None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
