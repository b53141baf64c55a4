"""Networks: the network service (IPAM, endpoints, /etc/hosts and resolv.conf) over the
network driver plugins."""
