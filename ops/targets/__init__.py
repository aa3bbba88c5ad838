"""Where backups live, one interface (``protocol.Target``) and one module per kind:

- ``local``: this machine's folder, through the engine directly
- ``fly``: the production machine on Fly.io, through flyctl
- ``scripted``: what the Fly machine and an SSH host share (scripts + transfers)
- ``status``: the /health backup block computed from a listing
- ``chosen``: which of them a task run means, decided in one place
"""
