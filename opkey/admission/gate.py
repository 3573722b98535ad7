"""The gate: AdmissionReview bytes in, a judged response out, within a deadline, fail-closed.

:class:`Gate` is the I/O edge around the pure core (``parse_admission_review`` →
``plan_admission`` → ``AdmissionPlan.decide``). For each image the plan asks to verify it

1. answers from the verdict cache when the image is pinned by digest and a verdict for its
   repository, digest and policy fingerprint is remembered (no thread, no I/O: the common case);
2. otherwise, in a worker thread, resolves a tag to its digest through the registry (under a
   rule with ``require_digest = false``), looks in the cache again under the digest, and
   verifies with :func:`opkey.images.verify_image` under the rule's policy (its verifier and
   requirement, :mod:`opkey.admission.policies`). Concurrent requests for the same key share one
   verification (the replicas of a new Deployment arrive together);
3. stores the verdict as the cache's rules say (:mod:`opkey.admission.cache`): a pass for long,
   a completed rejection briefly, a failure that says nothing about the image (registry or
   provider unreachable, deadline) never.

Everything one request does shares one :class:`~opkey.http.Deadline`: the gate's own
(``deadline``, 8 s by default) or less when the API server's ``timeout`` is shorter. An image
still being verified when it passes fails with that reason, and the response is sent on time;
the worker stops at the same deadline, since every registry request is bounded by it.

Any error denies the image with its reason (an unexpected exception too, by its type: the
gate never admits because something broke). With ``mode`` :attr:`~opkey.admission.Mode.WARN`
(``--mode warn``) every failure becomes a warning: the audit mode for rolling out a policy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from opkey.admission.cache import CacheKey, VerdictCache
from opkey.admission.config import AdmissionConfig, Mode
from opkey.admission.plan import AdmissionPlan, ImageCheck, plan_admission
from opkey.admission.policies import GatePolicies, GatePolicy, key_problems
from opkey.admission.response import AdmissionResponse, ImageOutcome, review_error_response
from opkey.admission.review import AdmissionRequest, parse_admission_review
from opkey.digest import Digest
from opkey.errors import AdmissionReviewError, DeadlineError, OpkeyError, VerificationError
from opkey.http import Deadline
from opkey.images import verify_image
from opkey.registry.reference import ImageReference

if TYPE_CHECKING:
    from opkey.admission.metrics import AdmissionMetrics
    from opkey.registry.client import RegistryClient

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_WORKERS",
    "Gate",
    "GateState",
    "ImageJudgement",
    "Judgement",
    "Source",
]

#: Seconds one admission may take by default: well inside the API server's webhook timeout
#: (``timeoutSeconds``, 10 s by default), leaving it time to receive the answer.
DEFAULT_DEADLINE = 8.0
#: The share of the API server's ``timeout`` the gate allows itself when that is shorter.
_TIMEOUT_SHARE = 0.8
#: Worker threads that verify images (each blocks on registry requests, bounded by the deadline).
DEFAULT_WORKERS = 16

_log = logging.getLogger("opkey.admission")


class Source(str, Enum):
    """Where an image's outcome came from."""

    RULE = "rule"  # settled by the rule file (unmatched, not pinned, invalid reference)
    CACHE = "cache"  # a remembered verdict
    VERIFIED = "verified"  # verified now
    SHARED = "shared"  # verified now, by a concurrent request for the same image
    ERROR = "error"  # could not be verified (registry, provider, configuration)
    DEADLINE = "deadline"  # still being verified when the deadline passed


@dataclass(frozen=True, slots=True)
class ImageJudgement:
    """One image's outcome and where it came from (``digest`` when it was known)."""

    outcome: ImageOutcome
    source: Source
    digest: Digest | None = None


@dataclass(frozen=True)
class Judgement:
    """What the gate decided for one request: the response, and per image how.

    ``request`` is ``None`` when the review could not be read; ``response`` is then the
    denial naming why, or ``None`` when not even its ``uid`` was readable (the server answers
    HTTP 400 with ``error``).
    """

    response: AdmissionResponse | None
    request: AdmissionRequest | None = None
    images: tuple[ImageJudgement, ...] = ()
    error: AdmissionReviewError | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class GateState:
    """The rules and the loaded policies they name: what one request is judged under.

    A request takes the state once, at its start, and keeps it to its end, so a reload
    (:meth:`Gate.replace`) never judges half a request under one policy and half under another.
    """

    config: AdmissionConfig
    policies: GatePolicies

    def __post_init__(self) -> None:
        missing = [p for p in self.config.policy_paths() if p not in self.policies.by_path]
        if missing:
            raise ValueError(f"no loaded policy for {missing[0]}")

    def key(self, check: ImageCheck, reference: ImageReference) -> CacheKey:
        """The cache key of ``check``'s image at ``reference`` (pinned by digest)."""
        policy = self.policies[check.rule.policy]
        return CacheKey(reference.name, reference.require_digest(), policy.fingerprint)


@dataclass(frozen=True, slots=True)
class _Result:
    """A verification's result: passed or why not, and whether it may be cached."""

    passed: bool
    reason: str
    source: Source
    cacheable: bool


class Gate:
    """Judges admission requests under ``config`` with ``policies`` (see the module doc).

    ``registry`` is the client every image is read with (its credentials, CA bundle, insecure
    hosts); ``cache`` the verdict cache (a fresh default one when omitted); ``deadline`` the
    seconds one request may take; ``workers`` the threads verifying images; ``mode`` forces
    every rule's mode (``warn``: audit), ``None`` keeps the rule file's.
    """

    def __init__(
        self,
        config: AdmissionConfig,
        policies: GatePolicies,
        registry: RegistryClient,
        *,
        cache: VerdictCache | None = None,
        deadline: float = DEFAULT_DEADLINE,
        workers: int = DEFAULT_WORKERS,
        mode: Mode | None = None,
        metrics: AdmissionMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not deadline > 0:
            raise ValueError("the deadline must be positive")
        self._state = GateState(config, policies)
        self.registry = registry
        self.cache = cache if cache is not None else VerdictCache()
        self.deadline = float(deadline)
        self.mode = mode
        self.metrics = metrics
        self._clock = clock
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="opkey-verify"
        )
        self._inflight: dict[CacheKey, concurrent.futures.Future[_Result]] = {}
        self._lock = threading.Lock()

    @property
    def state(self) -> GateState:
        """The rules and policies new requests are judged under."""
        return self._state

    @property
    def config(self) -> AdmissionConfig:
        """The rules new requests are judged under."""
        return self._state.config

    @property
    def policies(self) -> GatePolicies:
        """The loaded policies new requests are judged under."""
        return self._state.policies

    def replace(self, config: AdmissionConfig, policies: GatePolicies) -> None:
        """Judge new requests under ``config`` and ``policies`` (requests under way keep
        theirs). Verdicts reached under the old policies stay in the cache under their old
        fingerprints, unused by the new ones, until they age out."""
        self._state = GateState(config, policies)

    def close(self) -> None:
        """Stop the workers (running verifications end at their deadlines)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- one request ---------------------------------------------------------------------------

    def budget(self, api_timeout: float | None) -> float:
        """Seconds for one request: the gate's deadline, or less under a short API timeout."""
        if api_timeout is None or api_timeout <= 0:
            return self.deadline
        return min(self.deadline, api_timeout * _TIMEOUT_SHARE)

    async def judge(self, body: bytes, *, seconds: float | None = None) -> Judgement:
        """Judge one AdmissionReview body within ``seconds`` (default: the gate's deadline).

        Never raises for bad input: a review that cannot be read gives a denial, or no response
        at all when not even its ``uid`` could be read (see :class:`Judgement`).
        """
        started = self._clock()
        state = self._state
        budget = self.deadline if seconds is None else max(min(seconds, self.deadline), 1e-3)
        deadline = Deadline.after(budget, clock=self._clock)
        try:
            request = parse_admission_review(body)
            plan = plan_admission(request, state.config)
        except AdmissionReviewError as exc:
            return Judgement(review_error_response(exc), error=exc, seconds=self._clock() - started)
        judged = [ImageJudgement(outcome, Source.RULE) for outcome in plan.settled]
        pending: list[ImageCheck] = []
        for check in plan.checks:
            cached = self._cached(check, state)
            if cached is None:
                pending.append(check)
            else:
                judged.append(cached)
        if pending:
            judged.extend(await self._verify_all(pending, deadline, state))
        response = self._decide(plan, judged)
        return Judgement(response, request, tuple(judged), seconds=self._clock() - started)

    def _decide(self, plan: AdmissionPlan, judged: Sequence[ImageJudgement]) -> AdmissionResponse:
        outcomes = [j.outcome for j in judged if j.source is not Source.RULE]
        if self.mode is None:
            return plan.decide(outcomes)
        forced = AdmissionPlan(
            plan.request,
            plan.checks,
            tuple(dataclasses.replace(o, mode=self.mode) for o in plan.settled),
        )
        return forced.decide([dataclasses.replace(o, mode=self.mode) for o in outcomes])

    async def _verify_all(
        self, checks: Sequence[ImageCheck], deadline: Deadline, state: GateState
    ) -> list[ImageJudgement]:
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(self._pool, self.verify, check, deadline, state)
            for check in checks
        ]
        await asyncio.wait(futures, timeout=max(deadline.remaining(), 0))
        judged = []
        for check, future in zip(checks, futures, strict=True):
            if not future.done():
                future.cancel()
                judged.append(self._late(check, deadline))
            elif future.exception() is not None:
                judged.append(self._internal(check, future.exception()))
            else:
                judged.append(future.result())
        return judged

    def _late(self, check: ImageCheck, deadline: Deadline) -> ImageJudgement:
        reason = f"not verified within the gate's {round(deadline.budget, 1):g}s deadline"
        if self.metrics is not None:
            self.metrics.image(Source.DEADLINE.value, passed=False)
        return ImageJudgement(check.failed(reason), Source.DEADLINE, check.reference.digest)

    def _internal(self, check: ImageCheck, error: BaseException | None) -> ImageJudgement:
        _log.error("internal error verifying %s", check.image.image, exc_info=error)
        name = type(error).__name__
        if self.metrics is not None:
            self.metrics.image(Source.ERROR.value, passed=False)
        return ImageJudgement(check.failed(f"internal error ({name})"), Source.ERROR)

    # -- one image -----------------------------------------------------------------------------

    def _cached(self, check: ImageCheck, state: GateState) -> ImageJudgement | None:
        if check.reference.digest is None:
            return None  # a tag must be resolved first: never cached by tag
        return self._from_cache(check, state.key(check, check.reference))

    def _from_cache(self, check: ImageCheck, key: CacheKey) -> ImageJudgement | None:
        verdict = self.cache.get(key)
        if verdict is None:
            return None
        if self.metrics is not None:
            self.metrics.image(Source.CACHE.value, passed=verdict.passed)
        outcome = check.passed() if verdict.passed else check.failed(verdict.reason)
        return ImageJudgement(outcome, Source.CACHE, key.digest)

    def verify(
        self, check: ImageCheck, deadline: Deadline, state: GateState | None = None
    ) -> ImageJudgement:
        """Verify one image now (a worker thread's job; blocking, bounded by ``deadline``),
        under ``state`` (default: the current one)."""
        state = state or self._state
        policy = state.policies[check.rule.policy]
        reference = check.reference
        if reference.digest is None:
            try:
                reference = self.registry.within(deadline).resolve(reference)
            except OpkeyError as exc:
                return self._judged(
                    check, None, _Result(False, _cannot(exc), _source(exc), cacheable=False)
                )
            key = state.key(check, reference)
            cached = self._from_cache(check, key)
            if cached is not None:
                return cached
        else:
            key = state.key(check, reference)
        with self._lock:
            shared = self._inflight.get(key)
            if shared is None:
                mine: concurrent.futures.Future[_Result] = concurrent.futures.Future()
                self._inflight[key] = mine
        if shared is not None:
            try:
                result = shared.result(timeout=max(deadline.remaining(), 0))
            except concurrent.futures.TimeoutError:
                return self._late(check, deadline)
            return self._judged(
                check, key.digest, dataclasses.replace(result, source=Source.SHARED)
            )
        try:
            result = self._verify_digest(reference, policy, deadline)
            mine.set_result(result)
        except BaseException as exc:  # never leave followers waiting
            mine.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._inflight[key]
        if result.cacheable:
            if result.passed:
                self.cache.passed(key)
            else:
                self.cache.rejected(key, result.reason)
        return self._judged(check, key.digest, result)

    def _judged(self, check: ImageCheck, digest: Digest | None, result: _Result) -> ImageJudgement:
        if self.metrics is not None:
            self.metrics.image(result.source.value, passed=result.passed)
        outcome = check.passed() if result.passed else check.failed(result.reason)
        return ImageJudgement(outcome, result.source, digest)

    def _verify_digest(
        self, reference: ImageReference, policy: GatePolicy, deadline: Deadline
    ) -> _Result:
        problems = key_problems()
        problems.failed = False
        started = time.perf_counter()
        try:
            # The gate needs the decision only: reading stops once the requirement is met.
            verify_image(
                self.registry,
                reference,
                policy.verifier,
                policy.requirement,
                deadline=deadline,
                until_met=True,
            )
        except VerificationError as exc:
            # A rejection while a key source failed may be the outage's doing: not remembered.
            reason = _brief(str(exc), reference)
            return _Result(False, reason, Source.VERIFIED, cacheable=not problems.failed)
        except OpkeyError as exc:
            return _Result(False, _brief(_cannot(exc), reference), _source(exc), cacheable=False)
        finally:
            if self.metrics is not None:
                self.metrics.verification(time.perf_counter() - started)
        return _Result(True, "", Source.VERIFIED, cacheable=True)


def _brief(reason: str, reference: ImageReference) -> str:
    """``reason`` without the long spelling of the image it is about (the response names the
    image already, and a warning has 256 characters): ``registry/repo@sha256:<64 hex>`` becomes
    "the image", other full digests keep 12 hex digits."""
    reason = reason.replace(str(reference), "the image")
    return _DIGEST.sub(lambda m: f"{m.group(1)}{m.group(2)[:12]}…", reason)


_DIGEST = re.compile(r"(sha256[:-])([0-9a-f]{64})")


def _source(error: OpkeyError) -> Source:
    return Source.DEADLINE if isinstance(error, DeadlineError) else Source.ERROR


def _cannot(error: OpkeyError) -> str:
    """The reason for an image that could not be verified (the error says what failed)."""
    return f"cannot verify: {error}"
