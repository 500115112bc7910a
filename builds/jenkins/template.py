"""A project's Jenkins job, rendered from the project (config.xml of a pipeline).

One scripted pipeline per project, run on the agent whose label is the
project's agent kind, with the parameters GIT_REF and IMAGE_TAG. Stages are
named like the docker executor's phases (source, dependencies, build, push)
so the console's stage markers become the same phase timings. The job's
description carries `ferry-config-hash: <sha256>` of everything else, so an
unchanged job is not rewritten before every build.
"""

import hashlib
from xml.sax.saxutils import escape

JOB_PREFIX = "ferry-"
HASH_PLACEHOLDER = "@FERRY_CONFIG_HASH@"

CONFIG = """\
<?xml version='1.1' encoding='UTF-8'?>
<flow-definition plugin="workflow-job">
  <description>{description}</description>
  <keepDependencies>false</keepDependencies>
  <properties>
    <hudson.model.ParametersDefinitionProperty>
      <parameterDefinitions>
        <hudson.model.StringParameterDefinition>
          <name>GIT_REF</name>
          <description>Branch, tag or commit to build.</description>
          <defaultValue>{default_ref}</defaultValue>
          <trim>true</trim>
        </hudson.model.StringParameterDefinition>
        <hudson.model.StringParameterDefinition>
          <name>IMAGE_TAG</name>
          <description>Tag of the image pushed by this build.</description>
          <defaultValue>latest</defaultValue>
          <trim>true</trim>
        </hudson.model.StringParameterDefinition>
      </parameterDefinitions>
    </hudson.model.ParametersDefinitionProperty>
  </properties>
  <definition class="org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition" \
plugin="workflow-cps">
    <script>{script}</script>
    <sandbox>true</sandbox>
  </definition>
  <triggers/>
  <disabled>false</disabled>
</flow-definition>
"""


def job_name(project) -> str:
    """Jenkins job of a project (prefixed: never clobber people's own jobs)."""
    return f"{JOB_PREFIX}{project.name}"


def image_name(project) -> str:
    """Repository the job tags (and pushes to, with a private registry)."""
    registry = project.cluster.registry
    if registry is None:
        return project.image_repository
    host = registry.listen_address
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"{host}:{registry.port}/{project.image_repository}"


def groovy(value: str) -> str:
    """A Groovy single-quoted string literal (no interpolation)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return "'" + escaped.replace("\n", "\\n").replace("\r", "\\r") + "'"


def pipeline_script(project) -> str:
    """The scripted pipeline: checkout, dependency command, docker build, push."""
    env = [
        f"FERRY_GIT_URL={project.git_url}",
        f"FERRY_DOCKERFILE={project.dockerfile}",
        f"FERRY_IMAGE={image_name(project)}",
        f"FERRY_PROJECT={project.name}",
    ]
    lines = [
        f"// Rendered by Ferry for project {project.name}; edits here are overwritten.",
        f"node({groovy(project.agent_kind)}) {{",
        "  withEnv([" + ", ".join(groovy(item) for item in env) + "]) {",
        "    stage('source') {",
        "      checkout([$class: 'GitSCM', branches: [[name: params.GIT_REF]],",
        "                userRemoteConfigs: [[url: env.FERRY_GIT_URL]]])",
        "    }",
    ]
    command = project.dependency_command.strip()
    if command:
        lines += ["    stage('dependencies') {", f"      sh {groovy(command)}", "    }"]
    lines += [
        "    stage('build') {",
        '      sh \'docker build -f "$FERRY_DOCKERFILE"'
        ' -t "$FERRY_IMAGE:$IMAGE_TAG" .\'',
        "    }",
    ]
    if project.cluster.registry_id:
        lines += [
            "    stage('push') {",
            "      sh 'docker push \"$FERRY_IMAGE:$IMAGE_TAG\"'",
            "    }",
        ]
    return "\n".join([*lines, "  }", "}", ""])


def render_job_config(project) -> str:
    """config.xml of the project's job, its hash in the description."""
    description = (
        f"Managed by Ferry: project {project.name}. Changes made here are "
        f"overwritten by the next build.\nferry-config-hash: {HASH_PLACEHOLDER}"
    )
    draft = CONFIG.format(
        description=escape(description),
        default_ref=escape(project.default_ref),
        script=escape(pipeline_script(project)),
    )
    digest = hashlib.sha256(draft.encode()).hexdigest()
    return draft.replace(HASH_PLACEHOLDER, digest)
