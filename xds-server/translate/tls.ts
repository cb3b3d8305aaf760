// TLS termination: a listener's DownstreamTlsContext names its certificates
// (and client CA) as SDS secrets, and the secrets carry the PEM contents the
// control plane read. The listener only names them, so a rotated file changes
// the Secret resource alone: Envoy swaps it in without draining the listener.
import type { Cluster, DownstreamTls, Listener, TlsVersion, UpstreamTls } from '../model/types.ts';
import type { EnvoyMessage } from '../model/resources.ts';
import { toAny } from '../protos/index.ts';

/** PEM contents by absolute path, read by the caller (translation does no I/O). */
export type TlsFileContents = ReadonlyMap<string, string>;

const TLS_VERSION: Record<TlsVersion, string> = { '1.0': 'TLSv1_0', '1.1': 'TLSv1_1', '1.2': 'TLSv1_2', '1.3': 'TLSv1_3' };

/** ALPN offered when the mesh names none: an http listener speaks both HTTP versions (HCM codec AUTO). */
const HTTP_ALPN = ['h2', 'http/1.1'];

export function certificateSecretName(listener: string, index: number): string {
  return `${listener}/certificate-${index}`;
}

export function clientCaSecretName(listener: string): string {
  return `${listener}/client-ca`;
}

function contents(files: TlsFileContents, file: string, listener: string): string {
  const text = files.get(file);
  // The loader reads every file the mesh names before translating; this is a bug guard.
  if (text === undefined) throw new Error(`${listener}: TLS file ${file} was not read`);
  return text;
}

/** The Secret resources one listener's TLS needs. */
export function tlsSecrets(listener: Listener, tls: DownstreamTls, files: TlsFileContents): EnvoyMessage[] {
  const secrets: EnvoyMessage[] = tls.certificates.map((c, i) => ({
    name: certificateSecretName(listener.name, i),
    tls_certificate: {
      certificate_chain: { inline_string: contents(files, c.certFile, listener.name) },
      private_key: { inline_string: contents(files, c.keyFile, listener.name) },
    },
  }));
  if (tls.clientCa !== undefined) {
    secrets.push({
      name: clientCaSecretName(listener.name),
      validation_context: { trusted_ca: { inline_string: contents(files, tls.clientCa, listener.name) } },
    });
  }
  return secrets;
}

function sanMatcher(san: string): EnvoyMessage {
  return { san_type: san.includes('://') ? 'URI' : 'DNS', matcher: { exact: san } };
}

/** The filter chain's transport socket; `source` is where Envoy fetches the secrets (ADS or the SDS service). */
export function downstreamTlsSocket(listener: Listener, tls: DownstreamTls, source: EnvoyMessage): EnvoyMessage {
  const alpn = tls.alpn ?? (listener.protocol === 'http' ? HTTP_ALPN : []);
  const common: EnvoyMessage = {
    // Several certificates: Envoy picks the one whose SAN/CN matches the SNI.
    tls_certificate_sds_secret_configs: tls.certificates.map((_, i) => ({ name: certificateSecretName(listener.name, i), sds_config: source })),
  };
  if (tls.minVersion !== undefined) common.tls_params = { tls_minimum_protocol_version: TLS_VERSION[tls.minVersion] };
  if (alpn.length > 0) common.alpn_protocols = [...alpn];
  const context: EnvoyMessage = { common_tls_context: common };
  if (tls.clientCa !== undefined) {
    common.combined_validation_context = {
      default_validation_context: tls.allowedSans ? { match_typed_subject_alt_names: tls.allowedSans.map(sanMatcher) } : {},
      validation_context_sds_secret_config: { name: clientCaSecretName(listener.name), sds_config: source },
    };
    context.require_client_certificate = { value: true };
  }
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: toAny('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', context),
  };
}

// ── upstream (cluster) TLS ─────────────────────────────────────────────────

/** Cluster secrets live under "clusters/": listener names have no "/", so the two never clash. */
export function clusterCaSecretName(cluster: string): string {
  return `clusters/${cluster}/ca`;
}

export function clusterCertificateSecretName(cluster: string): string {
  return `clusters/${cluster}/certificate`;
}

export function upstreamTlsSecrets(cluster: Cluster, tls: UpstreamTls, files: TlsFileContents): EnvoyMessage[] {
  const secrets: EnvoyMessage[] = [];
  if (tls.ca !== undefined) {
    secrets.push({ name: clusterCaSecretName(cluster.name), validation_context: { trusted_ca: { inline_string: contents(files, tls.ca, cluster.name) } } });
  }
  if (tls.certificate !== undefined) {
    secrets.push({
      name: clusterCertificateSecretName(cluster.name),
      tls_certificate: {
        certificate_chain: { inline_string: contents(files, tls.certificate.certFile, cluster.name) },
        private_key: { inline_string: contents(files, tls.certificate.keyFile, cluster.name) },
      },
    });
  }
  return secrets;
}

export function upstreamTlsSocket(cluster: Cluster, tls: UpstreamTls, source: EnvoyMessage): EnvoyMessage {
  const common: EnvoyMessage = {};
  if (tls.certificate !== undefined) {
    common.tls_certificate_sds_secret_configs = [{ name: clusterCertificateSecretName(cluster.name), sds_config: source }];
  }
  if (tls.ca !== undefined) {
    common.combined_validation_context = {
      // With an SNI the endpoint's certificate must name it, not just chain to the CA.
      default_validation_context: tls.sni !== undefined ? { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: tls.sni } }] } : {},
      validation_context_sds_secret_config: { name: clusterCaSecretName(cluster.name), sds_config: source },
    };
  }
  // An http2 cluster offers h2 unless told otherwise: Envoy sends no ALPN by default, and a
  // TLS gRPC server may refuse that (grpc-js, i.e. Node's HTTP/2 server: 403 "Missing ALPN Protocol").
  const alpn = tls.alpn ?? (cluster.http2 ? ['h2'] : undefined);
  if (alpn !== undefined) common.alpn_protocols = [...alpn];
  const context: EnvoyMessage = { common_tls_context: common };
  if (tls.sni !== undefined) context.sni = tls.sni;
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: toAny('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', context),
  };
}
