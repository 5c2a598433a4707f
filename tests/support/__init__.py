"""Test support: what tests share, imported from here and never from one another.

- ``http``: one fake HTTP host (a folder or given bodies, byte ranges, HEAD, faults, a request log).
- ``s3``: the real ``rclone serve s3``, a connection-resetting proxy, a plain boto3 client to read back.
- ``media``: audio made with the real ffmpeg (lavfi tones, the committed real speech), MP3s, images, meters.
- ``configs``: show and episode configs built from keylime_prod.config's models, written as TOML.
- ``tagging``: the short tagged-episode setup of the tag, chapter and ID3 reader tests.
- ``archive``: an old host's feed of short real-speech episodes; ``cluster``: a real Dask scheduler and workers.
- ``reporting``: a master on a known timeline and its loudness curves, for the report tests.
- ``pages``: our HTML pages read back as a browser would, with the checks every page must pass.
- ``procs``: child processes started as a shell starts them (SIGINT at its default).
- ``feeds``: third-party feed readers (gPodder's podcastparser, the Podcast Index's podcast-partytime) and feed
  manifests to build feeds from.
- ``fixtures/``: the pytest plugins (fixtures only), loaded by tests/conftest.py.
"""
