//! The saga endpoints (`/v1/sagas/...`): list sagas a page at a time,
//! show one with its steps and events, resume a parked one.

use weir_api::{ResumeSaga, SagaDetail, SagaList, SagaSummary};

use crate::{Client, Result, encode_segment};

/// Which sagas a list asks for; `None` is any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SagaFilter {
    /// `running`, `compensating`, `parked`, `completed` or `compensated`.
    pub status: Option<String>,
    pub saga_type: Option<String>,
}

impl Client {
    /// The first page of sagas matching `filter`, at most `limit` (the
    /// server cuts it to its page limit); the answer's `next` goes on
    /// through [`Self::sagas_next`].
    pub fn sagas(&self, filter: &SagaFilter, limit: usize) -> Result<SagaList> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(s) = &filter.status {
            query.push(("status", s.clone()));
        }
        if let Some(t) = &filter.saga_type {
            query.push(("type", t.clone()));
        }
        self.get("/v1/sagas", &query)
    }

    /// The page a list's `next` link names.
    pub fn sagas_next(&self, next: &str) -> Result<SagaList> {
        self.get(next, &[])
    }

    /// Saga `id`: its summary, steps and events.
    pub fn saga(&self, id: &str) -> Result<SagaDetail> {
        self.get(&format!("/v1/sagas/{}", encode_segment(id)), &[])
    }

    /// Resumes parked saga `id` as operator `by`; its summary after.
    pub fn resume_saga(&self, id: &str, by: &str) -> Result<SagaSummary> {
        self.post(
            &format!("/v1/sagas/{}/resume", encode_segment(id)),
            &ResumeSaga { by: by.to_owned() },
        )
    }
}
