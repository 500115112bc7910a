"""Pure logic of the Jenkins executor: the job template and the console reader."""

from types import SimpleNamespace
from xml.etree import ElementTree

from adapters.jenkins import CONFIG_HASH_RE
from builds.jenkins.console import ConsoleWatch, Event
from builds.jenkins.template import groovy, job_name, render_job_config


def project(**overrides):
    registry = overrides.pop("registry", None)
    cluster = SimpleNamespace(
        registry=registry, registry_id=registry and 1, jenkins_url=""
    )
    values = {
        "name": "shop",
        "agent_kind": "java",
        "git_url": "https://git.example.invalid/shop.git",
        "default_ref": "main",
        "dockerfile": "docker/app.Dockerfile",
        "dependency_command": "mvn -B -s \"$HOME/.m2/settings.xml\" 'go-offline' \\\n",
        "image_repository": "team/shop",
        "cluster": cluster,
        **overrides,
    }
    return SimpleNamespace(**values)


def parse(xml: str):
    return ElementTree.fromstring(xml.encode())


def test_the_job_has_the_parameters_and_a_pipeline_on_the_agent_label():
    root = parse(render_job_config(project()))

    assert root.tag == "flow-definition"
    params = {
        p.findtext("name"): p.findtext("defaultValue")
        for p in root.iter("hudson.model.StringParameterDefinition")
    }
    assert params == {"GIT_REF": "main", "IMAGE_TAG": "latest"}
    script = root.find("definition").findtext("script")
    assert root.find("definition").get("class").endswith("CpsFlowDefinition")
    assert script.splitlines()[1] == "node('java') {"
    stages = [line.strip() for line in script.splitlines() if "stage(" in line]
    assert stages == [
        "stage('source') {",
        "stage('dependencies') {",
        "stage('build') {",
    ]  # no registry: nothing to push to
    assert "FERRY_IMAGE=team/shop" in script
    assert "branches: [[name: params.GIT_REF]]" in script


def test_the_dependency_command_survives_quoting_exactly():
    command = project().dependency_command
    script = parse(render_job_config(project())).find("definition").findtext("script")
    assert f"sh {groovy(command.strip())}" in script
    assert groovy("a'b\\c\nd") == "'a\\'b\\\\c\\nd'"


def test_a_registry_adds_the_push_stage_and_prefixes_the_image():
    registry = SimpleNamespace(listen_address="0.0.0.0", port=5001)
    script = (
        parse(render_job_config(project(registry=registry)))
        .find("definition")
        .findtext("script")
    )
    assert "stage('push')" in script
    assert "FERRY_IMAGE=127.0.0.1:5001/team/shop" in script


def test_the_config_hash_is_stable_and_follows_every_change():
    first = render_job_config(project())
    digest = CONFIG_HASH_RE.search(first).group(1)
    assert len(digest) == 64
    assert render_job_config(project()) == first
    changed = render_job_config(project(default_ref="release"))
    assert CONFIG_HASH_RE.search(changed).group(1) != digest
    description = parse(first).findtext("description")
    assert description.endswith(f"ferry-config-hash: {digest}")
    assert job_name(project()) == "ferry-shop"


def test_the_console_reader_sees_stages_commit_and_digest_across_chunks():
    watch = ConsoleWatch()
    sha = "a" * 40
    digest = "sha256:" + "b" * 64
    text = (
        "[Pipeline] stage\n[Pipeline] { (source)\n"
        f"Checking out Revision {sha} (refs/remotes/origin/main)\n"
        "[Pipeline] }\n[Pipeline] // stage\n[Pipeline] { (push)\n"
        f"7: digest: {digest} size: 527"
    )
    events = []
    for start in range(0, len(text), 7):  # chunks split lines anywhere
        events += watch.feed(text[start : start + 7])
    events += watch.finish()

    assert events == [
        Event("stage-start", "source"),
        Event("commit", sha),
        Event("stage-end"),
        Event("stage-start", "push"),
        Event("digest", digest),
    ]


def test_the_failure_line_prefers_the_tool_error_over_the_pipeline_summary():
    watch = ConsoleWatch()
    watch.feed(
        "Step 3/3 : RUN make\nmake: *** [all] Error 2\n"
        "The command '/bin/sh -c make' returned a non-zero code: 2\n"
        "[Pipeline] }\nERROR: script returned exit code 2\nFinished: FAILURE\n"
    )
    assert watch.failure_line() == (
        "The command '/bin/sh -c make' returned a non-zero code: 2"
    )
    assert watch.exit_code == 2

    generic = ConsoleWatch()
    generic.feed("compiling\nERROR: script returned exit code 4\nFinished: FAILURE\n")
    assert generic.failure_line() == "ERROR: script returned exit code 4"

    quiet = ConsoleWatch()
    quiet.feed("[Pipeline] node\nlast words\nFinished: FAILURE\n")
    assert quiet.failure_line() == "last words"
