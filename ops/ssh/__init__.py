"""SSH hosts through Fabric: the building blocks an SSH target stands on.

``address`` parses ``[user@]host[:port]``; ``hostkeys`` reads known_hosts and words the
refusals; ``connection`` is the one factory (known hosts only, ``~/.ssh/config``, agent
and key files, timeouts); ``session`` runs the remote scripts of ``ops.remote`` and moves
files through SFTP. Nothing here draws: progress goes to callbacks.
"""
