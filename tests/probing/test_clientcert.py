"""Client certificates for mTLS: loaded into one context per target, reloaded in place when
the files change, a broken pair never replacing a good one."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from monitor.config.model import Target
from monitor.probing.clientcert import ClientCertificate
from tests.tlscerts import CertificateAuthority


def test_a_changed_pair_is_loaded_into_the_same_context_and_a_broken_one_is_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = CertificateAuthority(tmp_path)
    first = ca.issue("first", names=("recmon-probe",))
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    shutil.copy(first.cert_pem, cert)
    shutil.copy(first.key_pem, key)
    target = Target.model_validate(
        {"base_url": "https://api.test", "tls": {"cert_file": str(cert), "key_file": str(key)}}
    )
    client = ClientCertificate("api", target)
    context = client.context
    assert client.reloads == 1 and not client.refresh()  # unchanged: not loaded again

    # Half-written (a key that does not match): the certificate in use stays in use.
    second = ca.issue("second", names=("recmon-probe",))
    shutil.copy(second.cert_pem, cert)
    with caplog.at_level(logging.WARNING, logger="recmon.tls"):
        assert not client.refresh()
    assert caplog.records[0].getMessage() == (
        "client certificate not reloaded: keeping the one in use"
    )
    assert "PRIVATE KEY" not in repr(caplog.records[0].__dict__)

    shutil.copy(second.key_pem, key)
    assert client.refresh() and client.reloads == 2
    assert client.context is context  # every transport holding it presents the new one
    info = client.info()
    assert info is not None and info.serial == format(second.certificate.serial_number, "x")
