"""adapters/jenkins.py against the Jenkins stand-in over real HTTP (python-jenkins).

Each failure mode Jenkins can show (wrong token, anonymous, crumb refused or
stale, server down or silent, build deleted) must come out as our own error
with a reason that names the problem; the happy path must really create,
trigger, follow and read a build.
"""

import socket

import pytest

from adapters.jenkins import (
    JenkinsAuthFailed,
    JenkinsBuildVanished,
    JenkinsClient,
    JenkinsConnection,
    JenkinsCrumbRejected,
    JenkinsUnreachable,
    complete_utf8,
)
from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for

from .jenkins_standin import JenkinsStandin, Script, Step

CONFIG = (
    "<?xml version='1.1' encoding='UTF-8'?><flow-definition>"
    "<description>ferry-config-hash: {hash}</description></flow-definition>"
)


@pytest.fixture
def standin():
    with JenkinsStandin(users={"ferry": "tok-1"}, require_crumb=True) as server:
        yield server


def client_for(server, user="ferry", token="tok-1", timeout=5) -> JenkinsClient:
    return JenkinsClient(JenkinsConnection(server.url, user, token), timeout=timeout)


def test_it_creates_triggers_follows_and_reads_a_build(standin):
    standin.scripts["app"] = Script(
        queue_seconds=0.3,
        steps=[Step("one"), Step("two", gate="go"), Step("héllo wörld", 0.1)],
    )
    client = client_for(standin)
    assert client.version() == "2.462.3"
    assert client.ensure_job("app", CONFIG.format(hash="a" * 64)) == "created"
    assert client.ensure_job("app", CONFIG.format(hash="a" * 64)) == "unchanged"
    assert client.ensure_job("app", CONFIG.format(hash="b" * 64)) == "updated"
    assert "b" * 64 in standin.jobs["app"].config_xml

    queue_id = client.trigger("app", {"GIT_REF": "main", "IMAGE_TAG": "7"})
    assert client.queue_item(queue_id).state == "waiting"
    started = wait_for(
        lambda: (q := client.queue_item(queue_id)).state == "started" and q, 10
    )
    assert started.build_number == 1
    assert standin.run("app", 1).params == {"GIT_REF": "main", "IMAGE_TAG": "7"}

    text, offset, more = wait_for(
        lambda: (c := client.console_since("app", 1, 0))[0] and c, 10
    )
    assert (text, more) == ("one\n", True)
    assert client.build_info("app", 1).building is True
    standin.release("go")
    rest = ""
    while more:
        chunk, offset, more = client.console_since("app", 1, offset)
        rest += chunk
    assert rest == "two\nhéllo wörld\nFinished: SUCCESS\n"
    info = client.build_info("app", 1)
    assert (info.result, info.building) == ("SUCCESS", False)
    assert info.duration_ms >= 100 and info.timestamp > 0
    # python-jenkins fetched the crumb and sent it on every POST.
    assert standin.posts() and all(p["crumb"] == standin.crumb for p in standin.posts())


def test_a_stale_crumb_is_refreshed_once(standin):
    client = client_for(standin)
    client.ensure_job("app", CONFIG.format(hash="a" * 64))
    standin.rotate_crumb()  # Jenkins restarted: the cached crumb is stale
    assert client.trigger("app", {"GIT_REF": "main"}) > 0
    assert [p["status"] for p in standin.posts("buildWithParameters")] == [403, 201]


def test_a_crumb_that_is_never_accepted_gives_a_clear_error(standin):
    standin.accept_crumbs = False  # e.g. a proxy drops the header
    with pytest.raises(JenkinsCrumbRejected, match="No valid crumb"):
        client_for(standin).ensure_job("app", CONFIG.format(hash="a" * 64))
    assert "app" not in standin.jobs


def test_a_wrong_token_names_the_user(standin):
    with pytest.raises(JenkinsAuthFailed) as caught:
        client_for(standin, token="wrong").trigger("app", {})
    assert caught.value.reason.startswith(
        "Jenkins rejected the credentials for user ferry (HTTP 401)"
    )
    assert "wrong" not in caught.value.reason


def test_anonymous_is_refused_with_the_permission_reason(standin):
    with pytest.raises(JenkinsAuthFailed, match="anonymous may not .*HTTP 403"):
        client_for(standin, user="", token="").version()


def test_a_server_that_is_down_is_unreachable(standin):
    client = client_for(standin)
    standin.down()
    with pytest.raises(JenkinsUnreachable, match="connection refused"):
        client.version()
    standin.up()
    assert client.version()


def test_a_server_that_never_answers_times_out():
    port = free_port()
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", port))
        listener.listen(8)
        client = JenkinsClient(
            JenkinsConnection(f"http://127.0.0.1:{port}/", "u", "t"), timeout=0.5
        )
        with pytest.raises(JenkinsUnreachable, match=r"did not answer within 0.5 s"):
            client.version()


def test_a_deleted_build_vanishes_and_stop_and_queue_lookups_tolerate_gone(standin):
    standin.default_script = Script(queue_seconds=0, steps=[Step("x", gate="never")])
    client = client_for(standin)
    client.ensure_job("app", CONFIG.format(hash="a" * 64))
    queue_id = client.trigger("app", {})
    number = wait_for(lambda: client.queue_item(queue_id).build_number, 10)
    standin.vanish("app", number)
    with pytest.raises(JenkinsBuildVanished, match=r"app #1 vanished \(HTTP 404"):
        client.build_info("app", number)
    with pytest.raises(JenkinsBuildVanished):
        client.console_since("app", number, 0)
    client.stop("app", number)  # already gone: fine
    assert client.queue_item(999999) is None


def test_stop_aborts_and_a_queued_build_can_be_cancelled(standin):
    standin.default_script = Script(queue_seconds=0, steps=[Step("x", gate="never")])
    client = client_for(standin)
    client.ensure_job("app", CONFIG.format(hash="a" * 64))
    number = wait_for(lambda: client.queue_item(client.trigger("app", {})).build_number)
    client.stop("app", number)
    assert client.build_info("app", number).result == "ABORTED"

    standin.default_script = Script(queue_seconds=3600, steps=[])
    queue_id = client.trigger("app", {})
    client.cancel_queue(queue_id)
    assert client.queue_item(queue_id).state == "cancelled"


def test_nodes_are_created_once_and_their_secret_read(standin):
    client = client_for(standin)
    assert client.ensure_node("c1-java", 2, "java", "/home/jenkins/agent") == "created"
    assert client.ensure_node("c1-java", 2, "java", "/home/jenkins/agent") == "exists"
    node = standin.nodes["c1-java"]
    assert (node["numExecutors"], node["labelString"]) == (2, "java")
    assert node["launcher"] == "hudson.slaves.JNLPLauncher"
    assert client.agent_secret("c1-java") == node["secret"]


def test_nodes_follow_executors_and_labels_and_can_be_deleted(standin):
    client = client_for(standin)
    client.ensure_node("c1-java", 2, "java", "/home/jenkins/agent")
    remote_fs = standin.nodes["c1-java"]["remoteFS"]

    assert client.ensure_node("c1-java", 4, "java", "/home/jenkins/agent") == (
        "updated"
    )
    assert client.ensure_node("c1-java", 4, "java maven", "/x") == "updated"
    node = standin.nodes["c1-java"]
    assert (node["numExecutors"], node["labelString"]) == (4, "java maven")
    assert node["remoteFS"] == remote_fs  # the rest of config.xml is kept
    assert client.ensure_node("c1-java", 4, "java maven", "/x") == "exists"

    assert "c1-java" in client.nodes()
    client.delete_node("c1-java")
    client.delete_node("c1-java")  # gone already: fine
    assert "c1-java" not in client.nodes() and "c1-java" not in standin.nodes


def test_complete_utf8_holds_back_a_split_character():
    data = "aé".encode()
    assert complete_utf8(data) == 3
    assert complete_utf8(data[:2]) == 1
    assert complete_utf8(b"abc") == 3
