"""The Windows installer, built here with makensis from a placeholder app folder (the real one is frozen on
Windows), Authenticode-signed with osslsigncode and a certificate made for the test, then verified; a
one-byte change must break the signature."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WINDOWS = ROOT / "installer" / "windows"
VERSION = "0.1.0"
PASSWORD = "test-only password"

pytestmark = [
    pytest.mark.installer,
    pytest.mark.skipif(os.environ.get("HUATUO_INSTALLER_TEST") != "1",
                       reason="builds the release packages: run `make installer-test`"),
]


def run(command: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{command[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> dict[str, Path]:
    missing = [f"{tool} (apt-get install {package})" for tool, package in
               {"makensis": "nsis", "osslsigncode": "osslsigncode", "openssl": "openssl"}.items()
               if not shutil.which(tool)]
    if missing:
        pytest.fail("missing tools: " + ", ".join(missing))
    folder = tmp_path_factory.mktemp("certificate")
    key, cert, pfx = folder / "key.pem", folder / "cert.pem", folder / "signing.pfx"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=Huatuo Vision Test Code Signing", "-addext", "extendedKeyUsage=codeSigning",
         "-addext", "keyUsage=critical,digitalSignature"])
    run(["openssl", "pkcs12", "-export", "-inkey", str(key), "-in", str(cert), "-out", str(pfx),
         "-passout", f"pass:{PASSWORD}"])
    return {"cert": cert, "pfx": pfx}


@pytest.fixture(scope="module")
def installer(certificate, tmp_path_factory) -> tuple[Path, str]:
    app = tmp_path_factory.mktemp("app") / "huatuo"
    (app / "_internal" / "llama_cpp" / "lib").mkdir(parents=True)
    (app / "huatuo.exe").write_bytes(b"placeholder: the frozen Windows app is built on Windows\n")
    (app / "_internal" / "llama_cpp" / "lib" / "llama.dll").write_bytes(os.urandom(64 * 1024))
    out = tmp_path_factory.mktemp("out")
    env = {**os.environ, "PYTHON": sys.executable, "WINDOWS_PFX": str(certificate["pfx"]),
           "WINDOWS_PFX_PASSWORD": PASSWORD, "WINDOWS_TIMESTAMP_URL": ""}
    result = run([str(WINDOWS / "build-installer.sh"), str(app), str(out), VERSION], env=env)
    return Path(result.stdout.strip().splitlines()[-1]), result.stderr


def osslsigncode_verify(path: Path, ca: Path | None) -> subprocess.CompletedProcess:
    return run(["osslsigncode", "verify", *(["-CAfile", str(ca)] if ca else []), "-in", str(path)], check=False)


def test_installer_is_signed_and_verifies_against_the_certificate(installer, certificate):
    path, log = installer
    assert path.name == f"HuatuoVision-{VERSION}-setup.exe"
    assert path.read_bytes()[:2] == b"MZ"
    result = osslsigncode_verify(path, certificate["cert"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Signature verification: ok" in result.stdout
    assert "Huatuo Vision Test Code Signing" in result.stdout
    # the uninstaller was signed too, while makensis built it (!uninstfinalize), then the installer
    assert len(re.findall(r"^signed ", log, re.M)) == 2, log
    # no trust anchor, no trust: the same signature fails without the certificate
    assert osslsigncode_verify(path, None).returncode != 0


def test_installer_asks_for_no_administrator_rights(installer):
    path, _ = installer
    manifest = re.search(rb"<assembly.*?</assembly>", path.read_bytes(), re.S).group(0).decode()
    assert re.search(r'requestedExecutionLevel\s+level="asInvoker"', manifest), manifest
    script = (WINDOWS / "huatuo.nsi").read_text()
    assert 'InstallDir "$LOCALAPPDATA\\Programs\\${APP_NAME}"' in script
    assert "HKLM" not in script


def test_a_one_byte_change_breaks_the_signature(installer, certificate, tmp_path):
    path, _ = installer
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside the signed image, before the appended signature
    tampered = tmp_path / path.name
    tampered.write_bytes(bytes(data))
    result = osslsigncode_verify(tampered, certificate["cert"])
    assert result.returncode != 0
    assert "MISMATCH" in result.stdout


def test_time_stamp(installer, certificate, tmp_path):
    url = os.environ.get("HUATUO_TEST_TIMESTAMP_URL")
    if not url:
        pytest.skip("time stamping asks an RFC 3161 server over the network, which this machine cannot reach; "
                    "set HUATUO_TEST_TIMESTAMP_URL (e.g. http://timestamp.digicert.com) where it can")
    path, _ = installer
    stamped = tmp_path / path.name
    shutil.copy2(path, stamped)
    env = {**os.environ, "WINDOWS_PFX": str(certificate["pfx"]), "WINDOWS_PFX_PASSWORD": PASSWORD,
           "WINDOWS_TIMESTAMP_URL": url}
    run([str(WINDOWS / "sign-exe.sh"), str(stamped)], env=env)
    result = osslsigncode_verify(stamped, certificate["cert"])
    assert "Timestamp" in result.stdout
