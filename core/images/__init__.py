"""Images: the image store (configs, layer chains, tags), pull/push/load/save between
the store and a transport, and the Dockerfile instructions that `commit --change` applies."""
