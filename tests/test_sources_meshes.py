"""Mesh sources (Stanford, Thingi10K, ModelNet40, ShapeNet): download → select → the project's sampler.

Tiny meshes with the real archive layouts are served by the loopback server; the datasets are
built with small resolutions so the whole file runs in seconds.
"""

from __future__ import annotations

import csv
import gzip
import io
import struct
import tarfile
import zipfile

import numpy as np
import pytest
import trimesh

from sbdbench.data.dataset import open_dataset
from sbdbench.data.sources import fetch
from sbdbench.data.sources.http import Downloader
from sbdbench.data.sources.meshsets import read_off_lenient, select_thingi10k
from sbdbench.errors import DataError
from http_fixtures import HubEmulator, LoopbackServer, url_map

SMALL = {"resolutions": [300], "noise_levels": [0.01], "workers": 1}


def _sphere(subdiv=2):
    m = trimesh.creation.icosphere(subdivisions=subdiv)
    return np.asarray(m.vertices), np.asarray(m.faces)


def _ply_ascii_with_extras(verts, faces) -> bytes:
    """Like Stanford's bun_zipper.ply: ascii, with confidence and intensity per vertex."""
    head = (
        "ply\nformat ascii 1.0\ncomment zipper output\n"
        f"element vertex {len(verts)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property float confidence\nproperty float intensity\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    body = "".join(f"{x:.6f} {y:.6f} {z:.6f} 1 0.5\n" for x, y, z in verts)
    body += "".join(f"3 {a} {b} {c}\n" for a, b, c in faces)
    return (head + body).encode()


def _ply_big_endian(verts, faces) -> bytes:
    """Like Lucy: binary big-endian."""
    head = (
        "ply\nformat binary_big_endian 1.0\n"
        f"element vertex {len(verts)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode()
    body = b"".join(struct.pack(">3f", *v) for v in verts)
    body += b"".join(struct.pack(">B3i", 3, *f) for f in faces)
    return head + body


def _tar(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _csv(rows) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


@pytest.fixture()
def srv(sbd_home):
    with LoopbackServer() as server:
        yield server


def _fetch(server, name, **kw):
    kw.setdefault("downloader", Downloader(retries=1, backoff=0.0, timeout=(5, 5), progress=False))
    return fetch(name, progress=False, url_map=url_map(server.base), log=lambda m: None, **kw)


# --- Stanford --------------------------------------------------------------------------------------
def test_stanford_archives_become_a_sampled_dataset(srv):
    v, f = _sphere()
    srv.add_file("/stanford/pub/3Dscanrep/bunny.tar.gz", _tar({"bunny/reconstruction/bun_zipper.ply": _ply_ascii_with_extras(v, f), "bunny/data/bun000.ply": b"ply"}))
    srv.add_file("/stanford/pub/3Dscanrep/armadillo/Armadillo.ply.gz", gzip.compress(_ply_big_endian(v * 2.0, f)))
    result = _fetch(srv, "stanford", options={"models": ["bunny", "armadillo"], **SMALL})
    assert result.status == "installed"
    ds = open_dataset("stanford")
    assert ds.shapes() == ["armadillo", "bunny"]
    assert ds.category("bunny") == "smooth"
    assert ds.load_clean("bunny", 300).shape == (300, 3)
    assert ds.load_noisy("armadillo", 300, 0.01).shape == (300, 3)
    mv, mf = ds.load_mesh("armadillo")
    radii = np.linalg.norm(mv - mv.mean(axis=0), axis=1)
    assert len(mf) == len(f) and np.allclose(radii, radii.mean(), rtol=1e-4)  # big-endian parsed right: still a sphere
    assert not srv.requests_to("/stanford/pub/3Dscanrep/dragon/dragon_recon.tar.gz")  # only what was asked
    assert _fetch(srv, "stanford", options={"models": ["bunny", "armadillo"], **SMALL}).status == "present"
    with pytest.raises(DataError, match="built with other options \\(models\\).*--force"):
        _fetch(srv, "stanford", options={"models": ["bunny"], **SMALL})
    n_requests = len(srv.log)
    assert _fetch(srv, "stanford", options={"models": ["bunny"], **SMALL}, force=True).status == "installed"
    assert open_dataset("stanford").shapes() == ["bunny"]
    assert len(srv.log) == n_requests + 1  # --force downloads again


def test_stanford_unknown_model_and_moved_url(srv):
    with pytest.raises(DataError, match="unknown model.*teapot"):
        _fetch(srv, "stanford", options={"models": ["teapot"]})
    with pytest.raises(DataError, match="every URL failed.*404"):
        _fetch(srv, "stanford", options={"models": ["bunny"]})


# --- Thingi10K ---------------------------------------------------------------------------------------
THINGI = ("Thingi10K/Thingi10K", "v1.5.0")  # the card's repo and pinned revision


def _thingi_metadata():
    geometry = [
        {"file_id": 100, "num_vertices": 642, "num_faces": 1280, "num_connected_components": 1, "num_boundary_edges": 0, "num_self_intersections": 0, "edge_manifold": 1, "solid": 1},
        {"file_id": 200, "num_vertices": 642, "num_faces": 1280, "num_connected_components": 1, "num_boundary_edges": 12, "num_self_intersections": 0, "edge_manifold": 1, "solid": 0},
        {"file_id": 300, "num_vertices": 642, "num_faces": 1280, "num_connected_components": 1, "num_boundary_edges": 0, "num_self_intersections": 0, "edge_manifold": 1, "solid": 1},
        {"file_id": 400, "num_vertices": 642, "num_faces": 1280, "num_connected_components": 2, "num_boundary_edges": 0, "num_self_intersections": 0, "edge_manifold": 1, "solid": 1},
    ]
    summary = [{"ID": 100, "Thing ID": 1, "Link": "x.stl"}, {"ID": 200, "Thing ID": 1, "Link": "y.stl"}, {"ID": 300, "Thing ID": 2, "Link": "z.stl"}, {"ID": 400, "Thing ID": 1, "Link": "w.stl"}]
    contextual = [{"Thing ID": 1, "Name": "a", "License": "Creative Commons - Attribution"}, {"Thing ID": 2, "Name": "b", "License": "GNU - GPL"}]
    return _csv(geometry), _csv(summary), _csv(contextual)


def _npz(v, f) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, vertices=v, facets=f)
    return buf.getvalue()


def _serve_thingi(srv, etag_ok=True):
    geometry, summary, contextual = _thingi_metadata()
    v, f = _sphere(3)
    tarball = _tar({f"npz/{i}.npz": _npz(v * i / 100, f) for i in (100, 200, 300, 400)})
    hub = HubEmulator(srv)  # answers like huggingface.co, the headers huggingface_hub needs
    hub.add_file(*THINGI, "Thingi10K_npz.tar.gz", tarball, etag_sha=None if etag_ok else "0" * 64)
    hub.add_file(*THINGI, "metadata/geometry_data.csv", geometry, lfs=False, content_type="text/csv")
    hub.add_file(*THINGI, "metadata/input_summary.csv", summary, lfs=False, content_type="text/csv")
    hub.add_file(*THINGI, "metadata/contextual_data.csv", contextual, lfs=False, content_type="text/csv")
    return hub


def test_thingi10k_filters_by_licence_and_watertightness(srv):
    _serve_thingi(srv)
    _fetch(srv, "thingi10k", options=SMALL)
    ds = open_dataset("thingi10k")
    assert ds.shapes() == ["thingi_100"]  # 200 has boundary edges, 300 is GPL, 400 has two components
    assert ds.manifest["provenance"]["shape_licences"] == {"thingi_100": "Creative Commons - Attribution"}


def test_thingi10k_hub_etag_is_checked_on_first_download(srv, sbd_home):
    _serve_thingi(srv, etag_ok=False)
    with pytest.raises(DataError, match="checksum mismatch"):
        _fetch(srv, "thingi10k", options=SMALL)
    assert not (sbd_home / "data" / "thingi10k").exists()


def test_thingi10k_pinned_revision_gone_is_one_line_and_installs_nothing(srv, sbd_home):
    hub = _serve_thingi(srv)
    hub.files = {(repo, "v2.0", path): route for (repo, _, path), route in hub.files.items()}  # the tag moved on
    with pytest.raises(DataError) as info:
        _fetch(srv, "thingi10k", options=SMALL)
    assert "has no revision 'v1.5.0'" in str(info.value) and "\n" not in str(info.value)
    assert not (sbd_home / "data" / "thingi10k").exists()


def test_select_thingi10k_options(tmp_path):
    for name, data in zip(("g.csv", "s.csv", "c.csv"), _thingi_metadata()):
        (tmp_path / name).write_bytes(data)
    pick = lambda **o: [fid for fid, _ in select_thingi10k(tmp_path / "g.csv", tmp_path / "s.csv", tmp_path / "c.csv", o)]
    assert pick(licences=["Creative Commons - Attribution"]) == [100]
    assert pick() == [100, 300]
    assert pick(single_component=False) == [100, 300, 400]
    assert pick(max_shapes=1) == [100]


# --- ModelNet40 ---------------------------------------------------------------------------------------
def _off_malformed(v, f) -> bytes:
    lines = [f"OFF{len(v)} {len(f)} 0"] + [f"{a} {b} {c}" for a, b, c in v] + [f"3 {a} {b} {c}" for a, b, c in f]
    return ("\n".join(lines) + "\n").encode()


def test_read_off_lenient_accepts_modelnet_headers(tmp_path):
    v, f = _sphere(1)
    p = tmp_path / "m.off"
    p.write_bytes(_off_malformed(v, f))
    rv, rf = read_off_lenient(p)
    assert np.allclose(rv, v) and (rf == f).all()
    p.write_text("OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")  # a quad → two triangles
    assert read_off_lenient(p)[1].tolist() == [[0, 1, 2], [0, 2, 3]]
    p.write_text("OFF\n4 1 0\n0 0 0\n")
    with pytest.raises(Exception, match="truncated|malformed"):
        read_off_lenient(p)


def test_modelnet40_subset(srv):
    v, f = _sphere()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ModelNet40/chair/test/chair_0890.off", _off_malformed(v, f))
        zf.writestr("ModelNet40/chair/test/chair_0891.off", _off_malformed(v, f))
        zf.writestr("ModelNet40/chair/train/chair_0001.off", _off_malformed(v, f))
        zf.writestr("ModelNet40/lamp/test/lamp_0125.off", _off_malformed(v, f))
    srv.add_file("/modelnet/ModelNet40.zip", buf.getvalue())
    _fetch(srv, "modelnet40", options={"per_class": 1, **SMALL})
    assert open_dataset("modelnet40").shapes() == ["chair_0890", "lamp_0125"]


# --- ShapeNet ------------------------------------------------------------------------------------------
def test_shapenet_from_a_local_folder(sbd_home, tmp_path):
    v, f = _sphere()
    obj = "".join(f"v {a} {b} {c}\n" for a, b, c in v) + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in f)
    for model in ("m1", "m2", "m3"):
        path = tmp_path / "ShapeNetCore.v2" / "03001627" / model / "models" / "model_normalized.obj"
        path.parent.mkdir(parents=True)
        path.write_text(obj)
    fetch("shapenet", source_path=tmp_path / "ShapeNetCore.v2", options=SMALL, progress=False, log=lambda m: None)
    assert open_dataset("shapenet").shapes() == ["03001627_m1", "03001627_m2"]
