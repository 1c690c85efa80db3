//! Manual replica assignments in CreateTopics and CreatePartitions. This
//! node holds every partition, so the one valid replica list is this
//! broker alone; anything else is refused as a KRaft controller refuses it
//! (INVALID_REPLICA_ASSIGNMENT, or INVALID_REQUEST when a count is given
//! beside the assignment).

use kafka_protocol::messages::BrokerId;

use crate::codes::Code;

/// Why an assignment is refused: the code and a message for the client.
pub(crate) type Refusal = (Code, String);

/// Checks one partition's replica list against the only broker there is.
fn check_replicas(partition: i64, brokers: &[BrokerId], node_id: i32) -> Result<(), Refusal> {
    let refuse = |message: String| Err((Code::InvalidReplicaAssignment, message));
    if brokers.is_empty() {
        return refuse(format!("partition {partition}: the replica list is empty"));
    }
    for (i, broker) in brokers.iter().enumerate() {
        if brokers[..i].contains(broker) {
            return refuse(format!(
                "partition {partition}: broker {} is listed more than once",
                broker.0
            ));
        }
        if broker.0 != node_id {
            return refuse(format!(
                "partition {partition}: broker {} does not exist (the cluster's only broker is {node_id})",
                broker.0
            ));
        }
    }
    Ok(())
}

/// A new topic's assignment: the partition indexes must be 0..n, each
/// once, each with this broker as its only replica; the partition count
/// and replication factor must be left at -1. Returns the partition count.
pub(crate) fn for_new_topic(
    assignments: &[(i32, &[BrokerId])],
    num_partitions: i32,
    replication_factor: i16,
    node_id: i32,
) -> Result<i64, Refusal> {
    if num_partitions != -1 || replication_factor != -1 {
        return Err((
            Code::InvalidRequest,
            "a replica assignment was given, so the partition count and replication factor must be -1"
                .to_owned(),
        ));
    }
    let count = assignments.len();
    let mut seen = vec![false; count];
    for &(index, brokers) in assignments {
        let slot = usize::try_from(index).ok().filter(|&i| i < count);
        match slot {
            Some(i) if !seen[i] => seen[i] = true,
            _ => {
                return Err((
                    Code::InvalidReplicaAssignment,
                    format!(
                        "partition indexes must be 0 to {} with each once; {index} is not",
                        count - 1
                    ),
                ));
            }
        }
        check_replicas(i64::from(index), brokers, node_id)?;
    }
    Ok(count as i64)
}

/// The assignment of partitions added to a topic that has `current`: one
/// replica list per added partition, each this broker alone.
pub(crate) fn for_new_partitions(
    assignments: &[&[BrokerId]],
    current: i64,
    count: i64,
    node_id: i32,
) -> Result<(), Refusal> {
    let added = count - current;
    if added > 0 && assignments.len() as i64 != added {
        return Err((
            Code::InvalidReplicaAssignment,
            format!(
                "{added} partition(s) are added, but {} replica assignment(s) were given",
                assignments.len()
            ),
        ));
    }
    for (i, brokers) in assignments.iter().enumerate() {
        check_replicas(current + i as i64, brokers, node_id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: i32 = 0;

    fn ids(v: &[i32]) -> Vec<BrokerId> {
        v.iter().map(|&b| BrokerId(b)).collect()
    }

    #[test]
    fn only_this_broker_alone_is_a_valid_replica_list() {
        let (one, other, twice, empty) = (ids(&[0]), ids(&[1]), ids(&[0, 0]), ids(&[]));
        assert_eq!(for_new_topic(&[(1, &one), (0, &one)], -1, -1, NODE), Ok(2));
        for bad in [&other, &twice, &empty] {
            let refused = for_new_topic(&[(0, bad)], -1, -1, NODE).unwrap_err();
            assert_eq!(refused.0, Code::InvalidReplicaAssignment, "{bad:?}");
        }
        // Indexes must be 0..n, each once.
        for indexes in [[0, 0], [0, 2], [-1, 0]] {
            let assignments: Vec<_> = indexes.iter().map(|&i| (i, &one[..])).collect();
            let refused = for_new_topic(&assignments, -1, -1, NODE).unwrap_err();
            assert_eq!(refused.0, Code::InvalidReplicaAssignment, "{indexes:?}");
        }
        // A count beside the assignment is a bad request.
        assert_eq!(
            for_new_topic(&[(0, &one)], 1, -1, NODE).unwrap_err().0,
            Code::InvalidRequest
        );
        assert_eq!(
            for_new_topic(&[(0, &one)], -1, 1, NODE).unwrap_err().0,
            Code::InvalidRequest
        );
    }

    #[test]
    fn added_partitions_need_one_list_each() {
        let (one, other) = (ids(&[0]), ids(&[3]));
        assert_eq!(for_new_partitions(&[&one, &one], 2, 4, NODE), Ok(()));
        let refused = for_new_partitions(&[&one], 2, 4, NODE).unwrap_err();
        assert_eq!(refused.0, Code::InvalidReplicaAssignment);
        assert!(
            refused.1.contains("2 partition(s) are added"),
            "{}",
            refused.1
        );
        let refused = for_new_partitions(&[&one, &other], 2, 4, NODE).unwrap_err();
        assert!(refused.1.contains("partition 3: broker 3"), "{}", refused.1);
    }
}
