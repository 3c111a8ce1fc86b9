//! Container files: hostname, `/etc/hosts`, `/etc/resolv.conf`.
