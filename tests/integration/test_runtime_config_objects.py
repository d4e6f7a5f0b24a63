"""ConfigMaps and Secrets on the real Docker engine: env seen in the container, config
volumes (items, defaultMode, subPath) and an update that reaches a running Pod in place.
The manifests are the Kubernetes documentation's examples (images: busybox:local)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid

import pytest
import trio

from agent.runtime.config import RuntimeConfig
from agent.runtime.config_volumes import pod_volumes_dir
from agent.runtime.status import Running, Waiting
from agent.state.config_kinds import admit_config_map, admit_secret
from agent.state.manifest import load_manifests
from tests.integration.conftest import Harness, container_state, in_thread

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _no_files_left(node_name: str):
    """Whatever happens, the test node's config volumes leave with the test."""
    yield
    shutil.rmtree(os.path.join(RuntimeConfig().config_volume_dir, node_name), ignore_errors=True)

SECRET_PASSWORD = "39528$vdg7Jb"

# "ConfigMaps" concept page: the game-demo ConfigMap and the Pod that uses it.
GAME_DEMO = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: game-demo
data:
  # property-like keys; each key maps to a simple value
  player_initial_lives: "3"
  ui_properties_file_name: "user-interface.properties"

  # file-like keys
  game.properties: |
    enemy.types=aliens,monsters
    player.maximum-lives=5
  user-interface.properties: |
    color.good=purple
    color.bad=yellow
    allow.textmode=true
"""

CONFIGMAP_DEMO_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: configmap-demo-pod
spec:
  containers:
    - name: demo
      image: busybox:local
      command: ["sleep", "3600"]
      env:
        # Define the environment variable
        - name: PLAYER_INITIAL_LIVES # Notice that the case is different here
                                     # from the key name in the ConfigMap.
          valueFrom:
            configMapKeyRef:
              name: game-demo           # The ConfigMap this value comes from.
              key: player_initial_lives # The key to fetch.
        - name: UI_PROPERTIES_FILE_NAME
          valueFrom:
            configMapKeyRef:
              name: game-demo
              key: ui_properties_file_name
      volumeMounts:
      - name: config
        mountPath: "/config"
        readOnly: true
      - name: config
        mountPath: "/pinned/game.properties"
        subPath: game.properties
  volumes:
  # You set volumes at the Pod level, then mount them into containers inside that Pod
  - name: config
    configMap:
      # Provide the name of the ConfigMap you want to mount.
      name: game-demo
      # An array of keys from the ConfigMap to create as files
      items:
      - key: "game.properties"
        path: "game.properties"
      - key: "user-interface.properties"
        path: "user-interface.properties"
"""

# "Distribute Credentials Securely Using Secrets": a Secret as env and as files.
SECRET = f"""
apiVersion: v1
kind: Secret
metadata:
  name: test-secret
data:
  username: bXktYXBw
stringData:
  password: "{SECRET_PASSWORD}"
"""

SECRET_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: secret-test-pod
spec:
  containers:
    - name: test-container
      image: busybox:local
      command: ["sleep", "3600"]
      envFrom:
      - secretRef:
          name: test-secret
        prefix: CRED_
      env:
      - name: SECRET_USERNAME
        valueFrom:
          secretKeyRef:
            name: test-secret
            key: username
      volumeMounts:
        # name must match the volume name below
        - name: secret-volume
          mountPath: /etc/secret-volume
          readOnly: true
  # The secret data is exposed to Containers in the Pod through a Volume.
  volumes:
    - name: secret-volume
      secret:
        secretName: test-secret
        defaultMode: 0400
        items:
        - key: username
          path: my-group/my-username
          mode: 0777
        - key: password
          path: password
"""


def _quick(text: str) -> str:
    """The example with a short grace period: `sleep` as PID 1 ignores SIGTERM."""
    return text.replace("\nspec:\n", "\nspec:\n  terminationGracePeriodSeconds: 1\n", 1)


def _doc(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


async def _exec(docker_client, container_id: str, *cmd: str) -> str:
    result = await in_thread(lambda: docker_client.containers.get(container_id).exec_run(list(cmd)))
    return result.output.decode()


async def _removed(harness: Harness, pod) -> None:
    """Remove the Pod; its config volumes' directory goes with it."""
    volumes = pod_volumes_dir(harness.config.config_volume_dir, harness.node_name, pod.metadata.uid)
    harness.source.set_pods([])
    with trio.fail_after(20):
        while os.path.exists(volumes):
            await trio.sleep(0.1)


async def _running(harness: Harness, pod, name: str):
    status = await harness.wait_for(pod, lambda s: isinstance(container_state(s, name), Running), what="running")
    return status.container(name).container_id


async def test_config_map_env_and_volume_updated_in_place(harness: Harness, docker_client) -> None:
    runtime = await harness.start()
    runtime.objects.put(admit_config_map(_doc(GAME_DEMO)))
    (pod,) = load_manifests(_quick(CONFIGMAP_DEMO_POD))
    pod = pod.with_uid(uuid.uuid4().hex)
    harness.source.set_pods([pod])
    cid = await _running(harness, pod, "demo")
    env = await _exec(docker_client, cid, "env")
    assert "PLAYER_INITIAL_LIVES=3" in env.splitlines()
    assert "UI_PROPERTIES_FILE_NAME=user-interface.properties" in env.splitlines()
    assert await _exec(docker_client, cid, "cat", "/config/game.properties") == (
        "enemy.types=aliens,monsters\nplayer.maximum-lives=5\n")
    assert sorted((await _exec(docker_client, cid, "ls", "/config")).split()) == [
        "game.properties", "user-interface.properties"]

    changed = _doc(GAME_DEMO)
    changed["data"]["game.properties"] = "enemy.types=aliens\nplayer.maximum-lives=7\n"
    changed["data"]["player_initial_lives"] = "9"
    runtime.objects.put(admit_config_map(changed))
    started = trio.current_time()
    with trio.fail_after(5):
        while "player.maximum-lives=7" not in await _exec(docker_client, cid, "cat", "/config/game.properties"):
            await trio.sleep(0.1)
    assert trio.current_time() - started < 5
    # The container is the same one; a subPath mount and the environment keep what they had.
    assert (await harness.holds(pod, lambda s: s.container("demo").container_id == cid, for_s=0.5))
    assert "player.maximum-lives=5" in await _exec(docker_client, cid, "cat", "/pinned/game.properties")
    assert "PLAYER_INITIAL_LIVES=3" in (await _exec(docker_client, cid, "env")).splitlines()

    await _removed(harness, pod)


async def test_secret_env_modes_and_missing_objects(harness: Harness, docker_client) -> None:
    runtime = await harness.start()
    (pod,) = load_manifests(_quick(SECRET_POD))
    pod = pod.with_uid(uuid.uuid4().hex)
    harness.source.set_pods([pod])
    # No Secret yet: the volume cannot be set up, the container waits and says why.
    status = await harness.wait_for(pod, lambda s: isinstance(container_state(s, "test-container"), Waiting)
                                    and "not found" in (container_state(s, "test-container").message or ""),
                                    what="waiting for its Secret")
    assert 'secret "test-secret" not found' in container_state(status, "test-container").message

    runtime.objects.put(admit_secret(_doc(SECRET)))
    cid = await _running(harness, pod, "test-container")
    env = (await _exec(docker_client, cid, "env")).splitlines()
    assert "SECRET_USERNAME=my-app" in env
    assert f"CRED_password={SECRET_PASSWORD}" in env and "CRED_username=my-app" in env
    assert await _exec(docker_client, cid, "cat", "/etc/secret-volume/my-group/my-username") == "my-app"
    assert await _exec(docker_client, cid, "cat", "/etc/secret-volume/password") == SECRET_PASSWORD
    modes = await _exec(docker_client, cid, "stat", "-L", "-c", "%a", "/etc/secret-volume/my-group/my-username",
                        "/etc/secret-volume/password")
    assert modes.split() == ["777", "400"]
    await _removed(harness, pod)


async def test_env_waits_for_a_missing_key(harness: Harness, docker_client) -> None:
    runtime = await harness.start()
    runtime.objects.put(admit_config_map({"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "special-config"}, "data": {"other": "x"}}))
    (pod,) = load_manifests(_quick("""
apiVersion: v1
kind: Pod
metadata:
  name: dapi-test-pod
spec:
  containers:
    - name: test-container
      image: busybox:local
      command: [ "sleep", "3600" ]
      env:
        - name: SPECIAL_LEVEL_KEY
          valueFrom:
            configMapKeyRef:
              name: special-config
              key: special.how
  restartPolicy: Never
"""))
    pod = pod.with_uid(uuid.uuid4().hex)
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: isinstance(container_state(s, "test-container"), Waiting)
                                    and container_state(s, "test-container").reason == "CreateContainerConfigError",
                                    what="CreateContainerConfigError")
    assert container_state(status, "test-container").message == (
        "couldn't find key special.how in ConfigMap default/special-config")
    runtime.objects.put(admit_config_map({"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "special-config"}, "data": {"special.how": "very"}}))
    cid = await _running(harness, pod, "test-container")
    assert "SPECIAL_LEVEL_KEY=very" in (await _exec(docker_client, cid, "env")).splitlines()
    await _removed(harness, pod)


async def test_config_volumes_of_a_pod_gone_while_the_agent_was_away_are_swept(harness: Harness) -> None:
    harness.config = dataclasses.replace(harness.config, resync_interval_s=0.5)
    await harness.start()
    left = pod_volumes_dir(harness.config.config_volume_dir, harness.node_name, "gone-uid")
    os.makedirs(os.path.join(left, "config"))
    with trio.fail_after(10):
        while os.path.exists(left):
            await trio.sleep(0.1)
