# SPDX-License-Identifier: Apache-2.0
"""gunicorn settings for the example API; serve.sh passes bind and workers on the command line."""
worker_class = "sync"
timeout = 30
graceful_timeout = 5
loglevel = "info"
# Newer gunicorn opens a control socket at one fixed path per user, which makes two servers on one
# machine (parallel tests, several examples) collide. Older versions ignore the unknown setting.
control_socket_disable = True
