"""The Jenkins executor: Ferry provisions a Jenkins master and its agents as
labelled containers and drives one pipeline job per project through
python-jenkins (adapters/jenkins.py).

* template.py  renders a project's job (config.xml, hash in the description)
* console.py   reads a pipeline console: stages, commit, digest, failure line
* provision.py master + agent containers: observe -> plan -> apply
* follow.py    one build: trigger, queue, stream console, result, timings
* executor.py  the `Executor` registered as "jenkins"
"""
