#!/bin/sh
# Start the SIP edge: TLS material and the node table in place, then OpenSIPS in the foreground.
#   /etc/sip-edge/tls/tls.{crt,key}  a mounted Secret, copied to /run/sip-edge/tls; without one, a
#                                    self-signed pair is made (trunks that verify need a real one)
#   /var/lib/sip-edge/nodes          the dispatcher table (shared with the membership controller,
#                                    which fills it); created empty if absent
#   /etc/sip-edge/trunks             the allow-list (`address`) and digest credentials
#                                    (`subscriber`): a ConfigMap, required
set -eu
tls=/run/sip-edge/tls
nodes=/var/lib/sip-edge/nodes
mkdir -p "$tls" "$nodes"
if [ -r /etc/sip-edge/tls/tls.crt ] && [ -r /etc/sip-edge/tls/tls.key ]; then
	cp /etc/sip-edge/tls/tls.crt /etc/sip-edge/tls/tls.key "$tls/"
else
	echo "sip-edge: no TLS Secret mounted, using a self-signed certificate" >&2
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=${SIP_EDGE_NAME:-sip-edge}" \
		-keyout "$tls/tls.key" -out "$tls/tls.crt" 2>/dev/null
fi
if [ ! -s "$nodes/dispatcher" ]; then
	cp /usr/share/sip-edge/nodes/version /usr/share/sip-edge/nodes/dispatcher "$nodes/"
fi
for table in version address subscriber; do
	[ -r "/etc/sip-edge/trunks/$table" ] || { echo "sip-edge: /etc/sip-edge/trunks/$table missing" >&2; exit 1; }
done
# VC_OPENSIPS_PUBLIC_IP (the static address) is advertised on the trunk-facing sockets.
exec opensips -F -f /etc/sip-edge/opensips.cfg -p /usr/local/bin/opensips-env "$@"
