"""Support code shared by tests/ and bench/, importable from both with a plain import.

- ``signals``: audio generated here (click tracks, tones, chords, noise) and written to files;
- ``profiles``: Profiles built from synthetic curves, run through the real structure stages;
- ``service``: a real gunicorn + job consumer on a free 127.0.0.1 port (fixture ``service``);
- ``redis_server``: a real redis-server and a multi-process scale-out deployment
  (fixture ``redis_server``);
- ``s3_server``: moto's S3 server on loopback (fixtures ``s3_endpoint``, ``s3_env``, ``bucket``);
- ``store_race``: the same-bytes-at-once checks every job store must pass;
- ``peers``: librosa and essentia run from their own venvs for the benches, results cached.

Like ``numpy.testing`` or ``flask.testing`` it ships with the package, but the product never
imports it (tests/inprocess/test_layers.py checks that the layers only look down); the fixtures need
pytest (the ``test`` extra). tests/conftest.py registers the fixtures for every test.
"""
