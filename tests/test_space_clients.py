"""Who a request comes from (space.clients), the fairness lanes keyed by it (space.fairness), the upload
bound (space.uploads.UploadBound) and the board's submitter: a header a client writes changes none of them."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

import gradio as gr
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from space import clients
from space.fairness import Admission, Busy

LOGIN = {"oauth_info": {"userinfo": {"preferred_username": "ada"}, "expires_at": time.time() + 3600}}


def _request(peer: str = "10.0.0.7", forwarded: list[str] = (), session: dict | None = None) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/gradio_api/queue/join",
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
        "client": (peer, 40000),
    }
    if session is not None:
        scope["session"] = session
    return Request(scope)


@pytest.fixture
def on_space(monkeypatch):
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "org/fsanet")
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client")
    monkeypatch.delenv("SPACE_PROXY_HOPS", raising=False)


@pytest.fixture
def off_space(monkeypatch):
    for name in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID", "SPACE_PROXY_HOPS"):
        monkeypatch.delenv(name, raising=False)


def test_off_a_space_the_address_is_the_sockets_peer_whatever_the_headers_say(off_space):
    assert clients.client_address(_request("127.0.0.1", ["203.0.113.9"])) == "127.0.0.1"
    forged = _request("127.0.0.1", ["203.0.113.9"])
    assert clients.client_key(forged) == clients.client_key(_request("127.0.0.1"))


def test_on_a_space_the_address_is_the_one_the_proxy_appended(on_space, monkeypatch):
    proxy = "10.16.3.80"  # Hugging Face's proxy, the socket's peer of every request
    assert clients.client_address(_request(proxy, ["198.51.100.4"])) == "198.51.100.4"
    # What the client wrote itself stands left of the proxy's entry, in one header or several.
    assert clients.client_address(_request(proxy, ["6.6.6.6, 198.51.100.4"])) == "198.51.100.4"
    assert clients.client_address(_request(proxy, ["6.6.6.6", "198.51.100.4"])) == "198.51.100.4"
    forged = [clients.client_key(_request(proxy, [f"{i}.{i}.{i}.{i}, 198.51.100.4"])) for i in range(1, 5)]
    assert len(set(forged)) == 1  # four forged addresses: one client
    assert clients.client_address(_request(proxy)) == proxy  # nothing appended: from inside
    assert clients.client_address(_request(proxy, ["not-an-address"])) == "unknown"
    monkeypatch.setenv("SPACE_PROXY_HOPS", "2")  # two appending proxies: the outer one's entry
    assert clients.client_address(_request(proxy, ["6.6.6.6, 198.51.100.4, 10.1.1.1"])) == "198.51.100.4"


def test_an_address_is_kept_only_as_a_keyed_hash(off_space, monkeypatch):
    address = "192.0.2.33"
    key = clients.address_key(address)
    assert address not in key and key != hashlib.sha256(address.encode()).hexdigest()[: len(key)]
    assert clients.address_key(address) == key  # stable within the process
    monkeypatch.setenv("SPACE_CLIENT_SECRET", "s3cret")
    clients._secret.cache_clear()
    try:
        expected = hmac.new(b"s3cret", address.encode(), hashlib.sha256).hexdigest()[:24]
        assert clients.address_key(address) == expected != key  # the setting keys it: ids survive restarts
    finally:
        clients._secret.cache_clear()


def test_a_login_is_read_from_the_signed_session_only(on_space):
    assert clients.hub_user(_request(session=LOGIN)) == "ada"
    assert clients.client_key(_request(session=LOGIN)) == "hf:ada"
    assert clients.client_key(gr.Request(request=_request(session=LOGIN))) == "hf:ada"  # as events get it
    expired = {"oauth_info": {**LOGIN["oauth_info"], "expires_at": time.time() - 1}}
    assert clients.hub_user(_request(session=expired)) is None
    assert clients.hub_user(_request()) is None  # no session middleware: nobody
    assert clients.client_key(None) == "anonymous"


def test_uvicorn_is_told_to_trust_no_forwarding_peer(monkeypatch):
    """Left alone, uvicorn takes ``X-Forwarded-For`` from any loopback peer as the client's address."""
    import asyncio

    import uvicorn
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["client"][0])

    scope = {"type": "http", "client": ("127.0.0.1", 5000), "headers": [(b"x-forwarded-for", b"6.6.6.6")]}
    default = uvicorn.Config(app).forwarded_allow_ips
    asyncio.run(ProxyHeadersMiddleware(app, default)(dict(scope), None, None))
    clients.distrust_forwarded_headers()
    asyncio.run(ProxyHeadersMiddleware(app, uvicorn.Config(app).forwarded_allow_ips)(dict(scope), None, None))
    assert seen == ["6.6.6.6", "127.0.0.1"]


# ------------------------------------------------------------------------------------------------- fairness
def _hold(admission: Admission, client: str, pixels: int, release: threading.Event) -> threading.Thread:
    entered = threading.Event()

    def work():
        with admission.admit(client, pixels):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_client_holds_its_share_however_many_sessions_it_opens():
    admission = Admission(light_slots=8, heavy_pixels=100, per_client=2, heavy_queue=4)
    release = threading.Event()
    threads = [_hold(admission, "ip:a", 10, release) for _ in range(2)]
    time.sleep(0.2)
    with pytest.raises(Busy, match="you already have 2 requests running"):
        with admission.admit("ip:a", 10):
            pass
    with admission.admit("ip:b", 10):  # another client is served
        pass
    release.set()
    for thread in threads:
        thread.join()
    with admission.admit("ip:a", 10):  # its share is back once its requests end
        pass


def test_the_heavy_lane_takes_one_per_client_and_a_bounded_queue():
    admission = Admission(light_slots=2, heavy_pixels=100, per_client=4, heavy_queue=2)
    release = threading.Event()
    threads = [_hold(admission, f"ip:{name}", 1000, release) for name in "abc"]  # 1 running, 2 waiting
    time.sleep(0.2)
    with pytest.raises(Busy, match="a large photo or a video being processed"):
        with admission.admit("ip:a", 1000):
            pass
    with pytest.raises(Busy, match="busy with other large photos and videos"):
        with admission.admit("ip:d", 1000):
            pass
    started = time.perf_counter()
    with admission.admit("ip:d", 10):  # a normal photo does not wait behind them
        pass
    assert time.perf_counter() - started < 1.0
    release.set()
    for thread in threads:
        thread.join()
    with admission.admit("ip:d", 1000):
        pass


# ---------------------------------------------------------------------------------------------- upload bound
@pytest.fixture
def upload_app():
    from space.uploads import UploadBound

    async def upload(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"stored {len(await request.body())} bytes")

    inner = UploadBound(Starlette(routes=[Route("/gradio_api/upload", upload, methods=["POST"])]))

    async def app(scope, receive, send):  # stands for Gradio's session middleware, outside UploadBound
        scope["session"] = LOGIN if dict(scope["headers"]).get(b"x-test-login") else {}
        await inner(scope, receive, send)

    return TestClient(app)


def test_uploads_are_bounded_by_what_the_sender_can_use_them_for(upload_app, on_space, monkeypatch):
    from space.uploads import media_bytes

    monkeypatch.setenv("SPACE_MAX_PHOTO_MB", "1")
    monkeypatch.setenv("SPACE_MAX_VIDEO_MB", "2")
    monkeypatch.setenv("LEADERBOARD_MAX_SUBMISSION_MB", "5")
    assert media_bytes() == 2 * 2**20
    fits, big = b"x" * (2 * 2**20), b"x" * (3 * 2**20)
    assert upload_app.post("/gradio_api/upload", content=fits).text == f"stored {len(fits)} bytes"
    refused = upload_app.post("/gradio_api/upload", content=big, headers={"X-Forwarded-For": "6.6.6.6"})
    assert refused.status_code == 413
    assert refused.text == (
        "The file is 3.0 MB, more than the 2 MB this Space accepts for photos and videos (a submission may "
        "be larger: log in on the Submit tab)."
    )
    logged_in = upload_app.post("/gradio_api/upload", content=big, headers={"X-Test-Login": "1"})
    assert logged_in.status_code == 200  # a submission's files
    too_big = upload_app.post("/gradio_api/upload", content=b"x" * (6 * 2**20), headers={"X-Test-Login": "1"})
    assert too_big.status_code == 413 and "more than the 5 MB this Space accepts." in too_big.text


def test_off_a_space_anyone_may_upload_a_submission(upload_app, off_space, monkeypatch):
    monkeypatch.setenv("SPACE_MAX_VIDEO_MB", "2")
    monkeypatch.setenv("LEADERBOARD_MAX_SUBMISSION_MB", "5")
    assert upload_app.post("/gradio_api/upload", content=b"x" * (3 * 2**20)).status_code == 200


def test_an_upload_must_state_its_size(upload_app, off_space):
    def chunks():
        yield b"x" * 10

    refused = upload_app.post("/gradio_api/upload", content=chunks())
    assert refused.status_code == 411 and "Content-Length" in refused.text


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "----fsanet-test"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
    body = (head + "Content-Type: application/octet-stream\r\n\r\n").encode() + data
    return body + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_huge_photo_the_heavy_lane_has_no_place_for_is_refused_from_its_header(
    upload_app, off_space, monkeypatch
):
    from space import uploads

    lane = Admission(light_slots=2, heavy_pixels=1_000_000, per_client=4, heavy_queue=0)
    monkeypatch.setattr(uploads, "admission", lane)
    huge, small = _multipart("huge.png", _png(5000, 4000)), _multipart("small.png", _png(450, 450))
    notes = _multipart("config.json", b"{}" * 100_000)

    def post(body_and_type):
        body, content_type = body_and_type
        return upload_app.post("/gradio_api/upload", content=body, headers={"Content-Type": content_type})

    assert post(huge).text == f"stored {len(huge[0])} bytes"  # the lane has a place: read in full
    release = threading.Event()
    holder = _hold(lane, "ip:someone-else", 2_000_000, release)
    time.sleep(0.2)
    try:
        refused = post(huge)
        assert refused.status_code == 503 and refused.headers["connection"] == "close"
        assert refused.text.startswith("The Space is busy with other large photos and videos")
        for passing in (small, notes):  # a normal photo, a file that is no photo: read in full
            assert post(passing).text == f"stored {len(passing[0])} bytes"
    finally:
        release.set()
        holder.join()
    assert post(huge).status_code == 200


def test_a_client_has_a_few_uploads_under_way_at_once(off_space, monkeypatch):
    from space.uploads import UploadBound

    monkeypatch.setenv("SPACE_CLIENT_REQUESTS", "2")
    bound = UploadBound(None)
    request = _request("192.0.2.1")
    request.scope["headers"].append((b"content-length", b"100"))
    key = clients.client_key(request)
    bound.uploading[key] = 2
    refused = bound._refusal(request, key)
    assert refused.status_code == 429 and b"2 uploads under way" in refused.body
    bound.uploading[key] = 1
    assert bound._refusal(request, key) is None


# ------------------------------------------------------------------------------------------------ submitters
def _variant_files(tmp_path) -> list[str]:
    import fsanet

    folder = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "variant")
    return [str(folder / "config.json"), str(folder / "model.safetensors")]


def test_an_anonymous_submission_on_a_space_is_refused_forged_headers_or_not(on_space, tmp_path, monkeypatch):
    from space.board import submit_variant

    monkeypatch.setenv("LEADERBOARD_DIR", str(tmp_path / "board"))
    files = _variant_files(tmp_path)
    for forwarded in ([], ["198.51.100.4"], ["6.6.6.6, 198.51.100.4"]):
        with pytest.raises(gr.Error, match="Log in with Hugging Face") as refused:
            submit_variant(files, "my_variant", request=gr.Request(request=_request(forwarded=forwarded)))
        assert refused.value.title == "Submission rejected"
    monkeypatch.delenv("OAUTH_CLIENT_ID")  # a Space whose README lacks hf_oauth: true
    with pytest.raises(gr.Error, match="need a Hugging Face login, which this Space does not offer"):
        submit_variant(files, "my_variant", request=gr.Request(request=_request()))
    queued = tmp_path / "board" / "requests"
    assert not queued.exists() or not any(queued.iterdir())


def test_a_logged_in_submission_is_made_in_the_users_name(on_space, tmp_path, monkeypatch):
    from leaderboard.storage.requests import RequestStore
    from space.board import submit_variant

    monkeypatch.setenv("LEADERBOARD_DIR", str(tmp_path / "board"))
    forged = _request(forwarded=["6.6.6.6, 198.51.100.4"], session=LOGIN)
    files = _variant_files(tmp_path)
    queued, message = submit_variant(files, "adas_variant", request=gr.Request(request=forged))
    assert "submitter" not in queued and "Accepted" in message  # what the page shows names no submitter
    stored = RequestStore().get(queued["id"])  # LEADERBOARD_DIR: the store the Space wrote
    assert stored.submitter == "hf:ada"
