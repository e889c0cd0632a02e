import Type from 'typebox'
import { ETCD_COMMON_NAME_PATTERN, type EtcdClientCertificate } from '../../../core/clusters/etcd-access.ts'
import { majorityOf, votersOf, type EtcdLook } from '../../../core/clusters/etcd-quorum.ts'
import { Nullable } from '../../../lib/nullable.ts'

const EtcdMemberResponse = Type.Object({
  id: Type.String({ description: "etcd's member ID in decimal, as its v3 JSON API writes it." }),
  id_hex: Type.String({ description: 'The same ID in hex, as etcdctl prints it (and `etcdctl member remove` takes it).' }),
  name: Type.String({ description: "The member's name (its node's hostname); empty for a member added but not started yet." }),
  peer_urls: Type.Array(Type.String()),
  client_urls: Type.Array(Type.String()),
  learner: Type.Boolean({ description: 'A learner follows the log but does not vote.' }),
  leader: Type.Boolean({ description: 'Whether this member leads now.' }),
  reachable: Type.Boolean({ description: 'Whether it answered its status request at its own client URL.' }),
  healthy: Type.Boolean({ description: 'Reachable, reporting no error, following a leader and answering /health with true.' }),
  raft_index: Nullable(Type.Integer({ description: 'Its raft commit index.' })),
  raft_applied_index: Nullable(Type.Integer({ description: 'The last entry it applied.' })),
  raft_term: Nullable(Type.Integer()),
  leader_id: Nullable(Type.String({ description: 'The leader it follows (decimal ID); null when it knows none.' })),
  version: Nullable(Type.String()),
  errors: Type.Array(Type.String(), { description: "Why it is not healthy: etcd's own errors, a failed /health, or why it could not be asked." }),
})

export const EtcdResponse = Type.Object({
  cluster: Type.String(),
  asked_at: Type.String(),
  leader: Nullable(Type.String({ description: 'The name of the member that leads; null when none does.' })),
  voting_members: Type.Integer(),
  healthy_members: Type.Integer({ description: 'Voting members that are healthy.' }),
  quorum: Type.Integer({ description: 'How many voting members must agree for etcd to commit anything.' }),
  members: Type.Array(EtcdMemberResponse),
})

export const EtcdClientCertificateBody = Type.Union([
  Type.Object(
    {
      common_name: Type.Optional(
        Type.String({ pattern: ETCD_COMMON_NAME_PATTERN, description: "The certificate's CN (letters, digits, \"._@:-\", at most 64); default `operator:<token name>`." }),
      ),
    },
    { additionalProperties: false },
  ),
  Type.Null(),
])

export const EtcdClientCertificateResponse = Type.Object({
  common_name: Type.String(),
  ca_certificate: Type.String({ description: "The cluster's etcd CA (etcdctl --cacert)." }),
  certificate: Type.String({ description: 'The client certificate (etcdctl --cert).' }),
  private_key: Type.String({ description: 'Its private key (etcdctl --key): generated for this answer, returned once, kept nowhere.' }),
  not_after: Type.String(),
})

export const toEtcdResponse = (look: EtcdLook) => {
  const voters = votersOf(look.members)
  return {
    cluster: look.cluster,
    asked_at: look.at,
    leader: look.leader ? look.leader.name || look.leader.id : null,
    voting_members: voters.length,
    healthy_members: voters.filter((member) => member.status.healthy).length,
    quorum: majorityOf(voters.length),
    members: look.members.map((member) => ({
      id: member.id,
      id_hex: BigInt(member.id).toString(16),
      name: member.name,
      peer_urls: member.peerUrls,
      client_urls: member.clientUrls,
      learner: member.learner,
      leader: member.id === look.leader?.id,
      reachable: member.status.reachable,
      healthy: member.status.healthy,
      raft_index: member.status.raftIndex,
      raft_applied_index: member.status.raftAppliedIndex,
      raft_term: member.status.raftTerm,
      leader_id: member.status.leaderId,
      version: member.status.version,
      errors: member.status.errors,
    })),
  }
}

export const toEtcdClientCertificateResponse = (commonName: string, issued: EtcdClientCertificate) => ({
  common_name: commonName,
  ca_certificate: issued.caPem,
  certificate: issued.certificatePem,
  private_key: issued.privateKeyPem,
  not_after: issued.notAfter,
})
