"""TencentAuditor through the real ims/vm SDKs over HTTP against the local API 3.0 server. Fail closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from moderation import open_auditor
from moderation.base import AuditPending, AuditResult, Verdict
from moderation.errors import AuditConfigError, AuditError, AuditRejected, AuditUnavailable
from moderation.local import BLOCK_MARKER, LocalMarkerAuditor
from moderation.tencent import TencentAuditor, data_id_for
from objectstore.local import LocalStore
from relay_core import pipelines
from relay_core.errors import ConfigError, Transient
from relay_core.settings import load
from tencent_plumbing.credentials import env_credentials, static_credentials
from tests.servers.api3_server import LocalApi3Server
from vendors.emulator.serving import LoopbackWsgiServer

SECRET_ID, SECRET_KEY, TOKEN = "AKIDmoderation", "moderation-secret-key", "moderation-token-1"
CLEAN, DIRTY = b"\x89PNG clean image bytes", b"\x89PNG ... " + BLOCK_MARKER + b" ..."


@pytest.fixture
def server():
    with LocalApi3Server(SECRET_ID, SECRET_KEY, TOKEN) as srv:
        yield srv


def auditor(server, **options) -> TencentAuditor:
    options.setdefault("credentials", static_credentials(SECRET_ID, SECRET_KEY, TOKEN))
    return TencentAuditor("ap-guangzhou", endpoint=server.endpoint, timeout_s=5, **options)


@pytest.fixture
def blob_url():
    """A loopback HTTP server that serves one blob (what a presigned COS URL would return)."""
    served: dict[str, bytes] = {}

    def blob_app(environ, start_response):
        data = served.get(environ["PATH_INFO"])
        start_response("200 OK" if data is not None else "404 Not Found", [("Content-Length", str(len(data or b"")))])
        return [data or b""]

    def publish(path: str, data: bytes) -> str:
        served[path] = data
        return f"{blobs.base_url}{path}?sign=q-signature-secret"

    with LoopbackWsgiServer(blob_app, name="blob-url") as blobs:
        yield publish


def test_images_pass_and_block_from_bytes(server):
    audit = auditor(server, biz_type="relay_policy")
    passed = audit.audit_image(CLEAN, "task1-1")
    blocked = audit.audit_image(DIRTY, "task1-2")
    assert passed.verdict is Verdict.PASS and passed.label == "Normal" and passed.score == 0
    assert blocked.verdict is Verdict.BLOCK and blocked.label == "Porn" and blocked.score == 99
    params = server.calls_of("ImageModeration")[0].params
    assert params["BizType"] == "relay_policy" and params["DataId"] == "task1-1" and "FileUrl" not in params


@pytest.mark.parametrize(("review_passes", "verdict"), [(False, Verdict.BLOCK), (True, Verdict.PASS)])
def test_review_blocks_unless_review_passes(server, review_passes, verdict):
    server.handle("ims", "ImageModeration", lambda params: {"Suggestion": "Review", "Label": "Ad", "Score": 61})
    result = auditor(server, review_passes=review_passes).audit_image(CLEAN, "t-1")
    assert result.verdict is verdict and result.label == "Ad" and "Review" in result.detail


def test_unknown_or_missing_suggestion_never_passes(server):
    for answer in ({"Suggestion": "Maybe"}, {}):
        server.handle("ims", "ImageModeration", lambda params, answer=answer: answer)
        with pytest.raises(AuditError) as caught:
            auditor(server).audit_image(CLEAN, "t-1")
        assert isinstance(caught.value, Transient)


def test_data_ids_are_made_acceptable(server):
    long_id = "task-" + "x" * 100 + ".jpg"
    auditor(server).audit_image(CLEAN, "task/1 frame_01.jpg")
    auditor(server).audit_image(CLEAN, long_id)
    sent = [c.params["DataId"] for c in server.calls_of("ImageModeration")]
    assert sent[0] == "task_1_frame_01_jpg"
    assert len(sent[1]) == 64 and sent[1] != data_id_for(long_id + "y")


def test_image_over_file_content_limit_goes_by_url(server, blob_url):
    audit = auditor(server)
    big = b"\xff\xd8" + b"\0" * (audit.max_image_bytes + 1024) + BLOCK_MARKER
    with pytest.raises(ValueError):
        audit.audit_image(big, "big-1")
    url = blob_url("/staging/big.jpg", big)
    result = audit.audit_image_url(url, "big-1")
    assert result.verdict is Verdict.BLOCK
    assert server.ims.seen[-1] == {"DataId": "big-1", "source": "url", "size": len(big)}
    params = server.calls_of("ImageModeration")[-1].params
    assert params["FileUrl"] == url and "FileContent" not in params
    assert audit.max_image_bytes * 4 / 3 <= 10 * 1024 * 1024  # base64 of FileContent stays within 10 MB


def test_video_from_cos_pending_then_finished(server, tmp_path):
    store = LocalStore(tmp_path, "media-1250000000")
    store.put_bytes("media-1250000000", "staging/u1/t1/clean.mp4", b"ftyp clean video")
    store.put_bytes("media-1250000000", "staging/u1/t1/dirty.mp4", b"ftyp " + BLOCK_MARKER)
    server.vm.object_reader = lambda bucket, key: store.get_bytes(bucket, key)
    audit = auditor(server, bucket_region="ap-shanghai", biz_type="relay_video")
    clean = audit.start_video("media-1250000000", "staging/u1/t1/clean.mp4", "t1-1")
    dirty = audit.start_video("media-1250000000", "staging/u1/t1/dirty.mp4", "t1-2")
    assert audit.video_result(clean) == AuditPending(retry_after_s=3.0)  # PENDING
    assert audit.video_result(clean) == AuditPending(retry_after_s=3.0)  # RUNNING
    finished = audit.video_result(clean)
    assert isinstance(finished, AuditResult) and finished.verdict is Verdict.PASS
    for _ in range(2):
        audit.video_result(dirty)
    assert audit.video_result(dirty).verdict is Verdict.BLOCK
    create = server.calls_of("CreateVideoModerationTask")[0].params
    assert create["Type"] == "VIDEO"
    assert create["Tasks"][0]["Input"] == {
        "Type": "COS",
        "BucketInfo": {
            "Bucket": "media-1250000000",
            "Region": "ap-shanghai",
            "Object": "staging/u1/t1/clean.mp4",
        },
    }


def test_video_pending_without_hint_and_errored_task(server):
    audit = auditor(server, biz_type="relay_video")
    server.vm.try_in_s = 0
    job = audit.start_video("b-1", "staging/v.mp4", "t2-1")
    assert audit.video_result(job) == AuditPending(retry_after_s=10.0)
    server.vm.pending_polls = 0
    server.vm.outcomes["t3-1"] = ("ERROR", "")
    failed = audit.start_video("b-1", "staging/v.mp4", "t3-1")
    with pytest.raises(AuditError, match="ERROR") as caught:
        audit.video_result(failed)
    assert isinstance(caught.value, Transient)
    with pytest.raises(AuditConfigError):
        audit.video_result("local:pass:t4-1")


@pytest.mark.parametrize(
    ("fault", "error", "retryable"),
    [
        ({"code": "InternalError"}, AuditUnavailable, True),
        ({"code": "RequestLimitExceeded"}, AuditUnavailable, True),
        ({"status": 502}, AuditUnavailable, True),
        ({"code": "UnauthorizedOperation.Unauthorized"}, AuditConfigError, False),
        ({"code": "ResourcesSoldOut"}, AuditConfigError, False),
        ({"code": "InvalidParameter.ImageSizeTooSmall"}, AuditRejected, False),
    ],
)
def test_service_errors_fail_closed(server, fault, error, retryable):
    server.fail_next("ims", "ImageModeration", **fault)
    server.fail_next("vm", "CreateVideoModerationTask", **fault)
    audit = auditor(server)
    for attempt in (
        lambda: audit.audit_image(CLEAN, "t-1"),
        lambda: audit.start_video("b-1", "k.mp4", "t-1"),
    ):
        with pytest.raises(error) as caught:
            attempt()
        assert type(caught.value) is error and isinstance(caught.value, Transient) is retryable


def test_our_side_errors_are_config_errors_without_secrets(server):
    wrong_key = auditor(server, credentials=static_credentials(SECRET_ID, "not-the-right-key", TOKEN))
    with pytest.raises(AuditConfigError, match="AuthFailure.SignatureFailure") as caught:
        wrong_key.audit_image(CLEAN, "t-1")
    assert "not-the-right-key" not in str(caught.value) and SECRET_KEY not in repr(wrong_key)
    no_token = auditor(server, credentials=static_credentials(SECRET_ID, SECRET_KEY))
    with pytest.raises(AuditConfigError, match="TokenFailure"):
        no_token.audit_image(CLEAN, "t-1")
    missing = auditor(server, credentials=lambda: env_credentials({}))
    with pytest.raises(AuditConfigError, match="TENCENTCLOUD_SECRETID"):
        missing.start_video("b-1", "k.mp4", "t-1")
    assert server.calls == []


def test_network_failure_is_retryable(server):
    audit = auditor(server)
    server.stop()
    with pytest.raises(AuditError) as caught:
        audit.audit_image(CLEAN, "t-1")
    assert isinstance(caught.value, Transient)


def test_open_auditor_by_name(server, tmp_path):
    store = LocalStore(tmp_path, "relay-local")
    settings = load(review_passes=True)
    assert isinstance(open_auditor("local", store=store, settings=settings), LocalMarkerAuditor)
    chosen = open_auditor(
        f"tencent?region=ap-shanghai&endpoint={server.endpoint}&biz_type=p01", store=store, settings=settings
    )
    assert isinstance(chosen, TencentAuditor)
    assert (chosen.biz_type, chosen.review_passes, chosen.bucket_region) == ("p01", True, "ap-shanghai")
    bad_names = (
        "tencent",
        "tencent?region=ap-shanghai&colour=blue",
        "tencent?region=r&endpoint=ftp://h",
        "aliyun",
        "local?x=1",
    )
    for bad in bad_names:
        with pytest.raises(ConfigError, match="RELAY_AUDITOR"):
            open_auditor(bad, store=store, settings=settings)


def test_video_moderation_without_biz_type_is_refused_by_the_api(server):
    """VM requires BizType: the local API 3.0 server answers MissingParameter like the real one."""
    with pytest.raises(AuditConfigError, match="MissingParameter"):
        auditor(server).start_video("b-1", "staging/v.mp4", "t5-1")
    assert auditor(server, biz_type="relay_video").start_video("b-1", "staging/v.mp4", "t5-2")


def test_video_pipelines_need_biz_type_at_start(server, tmp_path):
    """Any pipeline with video moderation makes a tencent auditor without biz_type a start-up ConfigError."""
    store = LocalStore(tmp_path, "relay-local")
    name = f"tencent?region=ap-shanghai&endpoint={server.endpoint}"
    with pytest.raises(ConfigError, match=r"^RELAY_AUDITOR: biz_type is missing and pipeline\(s\) \['.*'\]") as caught:
        open_auditor(name, store=store, settings=load())  # the packaged pipelines include a video one
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="RELAY_AUDITOR: biz_type="):
        open_auditor(name + "&biz_type=a-b", store=store, settings=load())
    images_only = tmp_path / "pipelines.toml"  # the packaged file without its video pipeline
    packaged = (Path(pipelines.__file__).parent / "pipelines.toml").read_text()
    images_only.write_text(packaged.split("[pipelines.video_tryon]")[0])
    assert isinstance(open_auditor(name, store=store, settings=load(pipelines=images_only)), TencentAuditor)
