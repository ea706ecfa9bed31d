"""The fake API server refuses what a real one refuses, so a client bug cannot pass against it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from fake_api import TOKEN, FakeApiServer


def _call(api: FakeApiServer, path: str, token: str | None = TOKEN) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(api.url + path, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize(
    ("path", "token", "code", "reason"),
    [
        ("/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs", None, 401, "Unauthorized"),
        ("/apis/kubeflow.org/v1beta1/namespaces/ml/pytorchjobs", TOKEN, 404, "NotFound"),  # not a served version
        ("/apis/trainer.kubeflow.org/v1alpha1/namespaces/ml/clustertrainingruntimes", TOKEN, 404, "NotFound"),
        ("/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs?labelSelector=a!=b", TOKEN, 400, "BadRequest"),
        ("/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs/x/log", TOKEN, 405, "MethodNotAllowed"),
    ],
)
def test_what_it_does_not_serve_is_an_error(
    api: FakeApiServer, path: str, token: str | None, code: int, reason: str
) -> None:
    status, body = _call(api, path, token)
    assert (status, body["kind"], body["reason"], body["code"]) == (code, "Status", reason, code)
    assert api.requests[-1].path == path.split("?")[0]
