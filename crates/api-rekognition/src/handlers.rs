//! One function per Rekognition operation. Store and index work runs on the blocking pool
//! (the caller wraps the synchronous handlers); engine work runs on the engine's bounded pool
//! ([`super::engine::FaceEngine::run`]).
//!
//! What Vigil computes of a face: `BoundingBox`, the five `Landmarks` (`eyeLeft`,
//! `eyeRight`, `nose`, `mouthLeft`, `mouthRight`), `Pose`, `Quality` and `Confidence`, which
//! are Rekognition's default attributes. With `ALL`, the attributes Vigil has no model for
//! (`AgeRange`, `Gender`, `Emotions`, `Smile`, `Eyeglasses`, ...) are left out of the answer,
//! never guessed.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};
use vigil_faces::{DetectedFace, MODEL_VERSION, similarity_from_cosine};
use vigil_store::StoredFace;

use super::engine::{self, Picture};
use super::error::{RekResult, RekognitionError};
use super::wire::{
    self, ImageInput, QualityFilter, bbox_json, bounding_box, face_detail, face_json, parse_uuid,
    uuid,
};
use crate::RekCall;
use crate::metrics::metrics;

/// Faces an image yields at most (Rekognition: the 100 largest).
pub const MAX_FACES_PER_IMAGE: usize = 100;
/// `SearchFaces` / `SearchFacesByImage` `MaxFaces` when not given.
pub const DEFAULT_MAX_MATCHES: i64 = 80;
/// `ListFaces` / `ListCollections` page size when not given.
pub const DEFAULT_PAGE: i64 = 1000;

fn model_check(rec: &vigil_store::CollectionRecord) -> RekResult<()> {
    if rec.face_model_version == MODEL_VERSION {
        Ok(())
    } else {
        Err(RekognitionError::invalid(format!(
            "The collection {} holds faces of face model {}; this server's model is \
             {MODEL_VERSION}, whose embeddings are not comparable. Create a new collection and \
             index the faces again.",
            rec.name, rec.face_model_version
        )))
    }
}

// ---- collections ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateCollectionInput {
    collection_id: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

/// `CreateCollection`.
pub fn create_collection(call: &RekCall) -> RekResult<Value> {
    let input: CreateCollectionInput = call.input()?;
    let id = wire::collection_id(&input.collection_id)?;
    let tags = input.tags.unwrap_or_default();
    if tags.len() > 200 {
        return Err(RekognitionError::validation(
            "tags",
            "tags",
            "Member must have length less than or equal to 200",
        ));
    }
    let rec = call
        .state
        .store
        .create_collection(id, MODEL_VERSION, tags)?;
    call.state.collections.forget(id);
    tracing::info!(collection = id, "collection created");
    // Rekognition writes this ARN without its `arn:` prefix (as its documentation shows);
    // DescribeCollection's CollectionARN has it.
    let arn = call.collection_arn(id);
    Ok(json!({
        "StatusCode": 200,
        "CollectionArn": arn.strip_prefix("arn:").unwrap_or(&arn),
        "FaceModelVersion": rec.face_model_version,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CollectionInput {
    collection_id: Option<String>,
}

/// `DescribeCollection`.
pub fn describe_collection(call: &RekCall) -> RekResult<Value> {
    let input: CollectionInput = call.input()?;
    let id = wire::collection_id(&input.collection_id)?;
    let rec = call.state.store.collection(id)?;
    Ok(json!({
        "FaceCount": rec.face_count,
        "FaceModelVersion": rec.face_model_version,
        "CollectionARN": call.collection_arn(id),
        "CreationTimestamp": rec.creation_time_ms as f64 / 1000.0,
        "UserCount": 0,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i64>,
}

/// `ListCollections`.
pub fn list_collections(call: &RekCall) -> RekResult<Value> {
    let input: ListInput = call.input()?;
    let limit = wire::int_in(input.max_results, "maxResults", 0, 4096, DEFAULT_PAGE)?.max(1);
    let after = wire::parse_token(&call.state.cfg.tokens, "ListCollections", &input.next_token)?;
    let limit = usize::try_from(limit).unwrap_or(1);
    let mut page = call
        .state
        .store
        .list_collections(after.as_deref(), limit + 1)?;
    let more = page.len() > limit;
    page.truncate(limit);
    let mut out = json!({
        "CollectionIds": page.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        "FaceModelVersions": page.iter().map(|c| c.face_model_version.clone()).collect::<Vec<_>>(),
    });
    if let (true, Some(last), Some(o)) = (more, page.last(), out.as_object_mut()) {
        o.insert(
            "NextToken".into(),
            json!(wire::next_token(
                &call.state.cfg.tokens,
                "ListCollections",
                &last.name
            )),
        );
    }
    Ok(out)
}

/// `DeleteCollection`: the collection and every face in it, durably.
pub fn delete_collection(call: &RekCall) -> RekResult<Value> {
    let input: CollectionInput = call.input()?;
    let id = wire::collection_id(&input.collection_id)?;
    let rec = call.state.store.delete_collection(id)?;
    call.state.collections.forget(id);
    tracing::info!(
        collection = id,
        faces = rec.face_count,
        "collection deleted"
    );
    Ok(json!({ "StatusCode": 200 }))
}

// ---- faces in a collection ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListFacesInput {
    collection_id: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    user_id: Option<String>,
    face_ids: Option<Vec<String>>,
}

/// `ListFaces`: in FaceId order, paged.
pub fn list_faces(call: &RekCall) -> RekResult<Value> {
    let input: ListFacesInput = call.input()?;
    let id = wire::collection_id(&input.collection_id)?;
    let limit = wire::int_in(input.max_results, "maxResults", 0, 4096, DEFAULT_PAGE)?.max(1);
    let limit = usize::try_from(limit).unwrap_or(1);
    let after = match wire::parse_token(&call.state.cfg.tokens, "ListFaces", &input.next_token)? {
        Some(pos) => Some(u128::from_str_radix(&pos, 16).map_err(|_| {
            RekognitionError::InvalidPaginationTokenException("Invalid Token".into())
        })?),
        None => None,
    };
    let only: Option<Vec<u128>> = input
        .face_ids
        .as_deref()
        .map(|ids| wire::face_ids(ids, "faceIds"))
        .transpose()?;
    wire::user_id(&input.user_id)?;
    let store = &call.state.store;
    let rec = store.collection(id)?;
    let mut faces: Vec<StoredFace> = if input.user_id.is_some() {
        // Vigil has no users: no face is associated with one.
        Vec::new()
    } else {
        store.faces(&rec, after, limit + 1)?
    };
    let more = faces.len() > limit;
    faces.truncate(limit);
    let next = faces.last().map(|f| f.face_id);
    if let Some(only) = &only {
        faces.retain(|f| only.contains(&f.face_id));
    }
    let list: Vec<Value> = faces
        .iter()
        .map(|f| {
            face_json(
                f.face_id,
                &super::collections::FaceMeta {
                    image_id: f.image_id,
                    external_image_id: f.external_image_id.clone(),
                    bounding_box: f.bounding_box,
                    confidence: f.confidence,
                    model_version: f.model_version.clone(),
                },
            )
        })
        .collect();
    let mut out = json!({ "Faces": list, "FaceModelVersion": rec.face_model_version });
    if let (true, Some(next), Some(o)) = (more, next, out.as_object_mut()) {
        o.insert(
            "NextToken".into(),
            json!(wire::next_token(
                &call.state.cfg.tokens,
                "ListFaces",
                &format!("{next:032x}")
            )),
        );
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteFacesInput {
    collection_id: Option<String>,
    face_ids: Option<Vec<String>>,
}

/// `DeleteFaces`.
pub fn delete_faces(call: &RekCall) -> RekResult<Value> {
    let input: DeleteFacesInput = call.input()?;
    let id = wire::collection_id(&input.collection_id)?;
    let Some(face_ids) = &input.face_ids else {
        return Err(RekognitionError::validation(
            "null",
            "faceIds",
            "Member must not be null",
        ));
    };
    let ids = wire::face_ids(face_ids, "faceIds")?;
    let state = &call.state;
    let removed =
        state
            .collections
            .write::<_, RekognitionError>(&state.store, id, |_, loaded| {
                let removed = state.store.delete_faces(id, &ids)?;
                loaded.remove(&removed);
                Ok(removed)
            })?;
    let missing: Vec<Value> = ids
        .iter()
        .filter(|i| !removed.contains(i))
        .map(|i| json!({ "FaceId": uuid(*i), "Reasons": ["FACE_NOT_FOUND"] }))
        .collect();
    tracing::info!(collection = id, deleted = removed.len(), "faces deleted");
    Ok(json!({
        "DeletedFaces": removed.iter().map(|i| uuid(*i)).collect::<Vec<_>>(),
        "UnsuccessfulFaceDeletions": missing,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SearchFacesInput {
    collection_id: Option<String>,
    face_id: Option<String>,
    max_faces: Option<i64>,
    face_match_threshold: Option<f64>,
}

/// The matches of `query` in a loaded collection: at most `k`, similarity at least
/// `threshold`, best first, leaving out `exclude`.
fn matches(
    loaded: &super::collections::Loaded,
    query: &[f32],
    k: usize,
    threshold: f32,
    exclude: Option<u128>,
) -> Vec<Value> {
    let started = Instant::now();
    let hits = loaded
        .index
        .search(query, k + usize::from(exclude.is_some()));
    metrics().face_search_seconds.observe(started.elapsed());
    hits.into_iter()
        .filter(|h| Some(h.key) != exclude)
        .map(|h| (h.key, similarity_from_cosine(h.cosine)))
        .filter(|(_, s)| *s >= threshold)
        .take(k)
        .filter_map(|(key, s)| {
            let meta = loaded.faces.get(&key)?;
            Some(json!({ "Similarity": s, "Face": face_json(key, meta) }))
        })
        .collect()
}

/// `SearchFaces`: the faces of the collection most like one of its own.
pub fn search_faces(call: &RekCall) -> RekResult<Value> {
    let input: SearchFacesInput = call.input()?;
    let id = wire::collection_id(&input.collection_id)?;
    let face_id = match &input.face_id {
        Some(f) => parse_uuid(f, "faceId")?,
        None => {
            return Err(RekognitionError::validation(
                "null",
                "faceId",
                "Member must not be null",
            ));
        }
    };
    let k = wire::int_in(input.max_faces, "maxFaces", 1, 4096, DEFAULT_MAX_MATCHES)?;
    let threshold = wire::percent(input.face_match_threshold, "faceMatchThreshold", 80.0)?;
    let state = &call.state;
    let rec = state.store.collection(id)?;
    model_check(&rec)?;
    let found = state
        .collections
        .read::<_, RekognitionError>(&state.store, &rec, |loaded| {
            let query = loaded.index.vector(face_id).ok_or_else(|| {
                RekognitionError::invalid(format!(
                    "The face {} is not in the collection {id}.",
                    uuid(face_id)
                ))
            })?;
            Ok(matches(
                loaded,
                query,
                usize::try_from(k).unwrap_or(1),
                threshold,
                Some(face_id),
            ))
        })?;
    Ok(json!({
        "SearchedFaceId": uuid(face_id),
        "FaceMatches": found,
        "FaceModelVersion": rec.face_model_version,
    }))
}

// ---- the engine's operations ----

/// Decodes an image and detects its faces (largest first, at most 100), on the engine pool.
async fn analyse(
    call: &RekCall,
    image: &ImageInput,
    member: &str,
) -> RekResult<(Picture, Vec<DetectedFace>)> {
    let bytes = image.bytes(member)?;
    call.state.engine.run(move |e| faces_in(e, &bytes)).await
}

/// Decodes an image and detects its faces, largest first, at most [`MAX_FACES_PER_IMAGE`].
fn faces_in(e: &vigil_faces::Engine, bytes: &[u8]) -> RekResult<(Picture, Vec<DetectedFace>)> {
    let picture = engine::decode(bytes)?;
    let mut faces = engine::detect(e, &picture)?;
    faces.truncate(MAX_FACES_PER_IMAGE);
    Ok((picture, faces))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexFacesInput {
    collection_id: Option<String>,
    image: Option<ImageInput>,
    external_image_id: Option<String>,
    detection_attributes: Option<Vec<String>>,
    max_faces: Option<i64>,
    quality_filter: Option<String>,
}

/// `IndexFaces`: detects the faces of an image, filters them (quality, then `MaxFaces`, the
/// smallest going first), and adds the rest to the collection, durably.
pub async fn index_faces(call: RekCall) -> RekResult<Value> {
    let input: IndexFacesInput = call.input()?;
    let id = wire::collection_id(&input.collection_id)?.to_owned();
    let image = wire::required_image(&input.image, "image")?;
    let external = wire::external_image_id(&input.external_image_id)?.map(str::to_owned);
    wire::attributes(&input.detection_attributes, "detectionAttributes")?;
    let max_faces = wire::int_in(input.max_faces, "maxFaces", 1, i64::from(i32::MAX), 100)?;
    let filter = QualityFilter::parse(&input.quality_filter, QualityFilter::Medium)?;
    let rec = call.state.store.collection(&id)?;
    model_check(&rec)?;

    let bytes = image.bytes("image")?;
    let max_faces = usize::try_from(max_faces).unwrap_or(usize::MAX);
    let (picture, indexed, unindexed) = call
        .state
        .engine
        .run(move |e| {
            let (picture, faces) = faces_in(e, &bytes)?;
            let mut unindexed: Vec<(Vec<&'static str>, DetectedFace)> = Vec::new();
            let mut kept = Vec::new();
            for f in faces {
                let reasons = filter.reasons(&f);
                if reasons.is_empty() {
                    kept.push(f);
                } else {
                    unindexed.push((reasons, f));
                }
            }
            // Largest first already; the smallest beyond MaxFaces go.
            for f in kept.split_off(kept.len().min(max_faces)) {
                unindexed.push((vec!["EXCEEDS_MAX_FACES"], f));
            }
            let mut indexed = Vec::with_capacity(kept.len());
            for f in kept {
                let emb = engine::embed(e, &picture, &f)?;
                indexed.push((f, emb));
            }
            Ok((picture, indexed, unindexed))
        })
        .await?;

    let (w, h) = (picture.width(), picture.height());
    let image_id = wire::new_uuid()?;
    let mut stored = Vec::with_capacity(indexed.len());
    for (f, emb) in &indexed {
        stored.push(StoredFace {
            face_id: wire::new_uuid()?,
            image_id,
            external_image_id: external.clone(),
            bounding_box: bounding_box(&f.rect, w, h),
            confidence: f.confidence * 100.0,
            model_version: MODEL_VERSION.to_owned(),
            embedding: emb.0.to_vec(),
        });
    }
    let state = call.state.clone();
    let to_store = stored.clone();
    let name = id.clone();
    tokio::task::spawn_blocking(move || {
        state
            .collections
            .write::<_, RekognitionError>(&state.store, &name, |rec, loaded| {
                model_check(rec)?;
                if to_store.is_empty() {
                    return Ok(());
                }
                state.store.add_faces(&name, &to_store)?;
                Ok(loaded.add(&to_store)?)
            })
    })
    .await
    .map_err(|e| RekognitionError::InternalServerError(e.to_string()))??;
    metrics().faces_indexed.inc_by(&[], stored.len() as u64);
    tracing::info!(
        collection = id,
        indexed = stored.len(),
        unindexed = unindexed.len(),
        "faces indexed"
    );

    let records: Vec<Value> = stored
        .iter()
        .zip(&indexed)
        .map(|(s, (f, _))| {
            json!({
                "Face": face_json(s.face_id, &super::collections::FaceMeta {
                    image_id: s.image_id,
                    external_image_id: s.external_image_id.clone(),
                    bounding_box: s.bounding_box,
                    confidence: s.confidence,
                    model_version: s.model_version.clone(),
                }),
                "FaceDetail": face_detail(f, w, h),
            })
        })
        .collect();
    let unindexed: Vec<Value> = unindexed
        .iter()
        .map(|(reasons, f)| json!({ "Reasons": reasons, "FaceDetail": face_detail(f, w, h) }))
        .collect();
    Ok(json!({
        "FaceRecords": records,
        "FaceModelVersion": MODEL_VERSION,
        "UnindexedFaces": unindexed,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SearchFacesByImageInput {
    collection_id: Option<String>,
    image: Option<ImageInput>,
    max_faces: Option<i64>,
    face_match_threshold: Option<f64>,
    quality_filter: Option<String>,
}

const NO_FACES: &str = "There are no faces in the image. Should be at least 1.";

/// `SearchFacesByImage`: the largest face of the image (that passes the quality filter)
/// searched in the collection.
pub async fn search_faces_by_image(call: RekCall) -> RekResult<Value> {
    let input: SearchFacesByImageInput = call.input()?;
    let id = wire::collection_id(&input.collection_id)?.to_owned();
    let image = wire::required_image(&input.image, "image")?;
    let k = wire::int_in(input.max_faces, "maxFaces", 1, 4096, DEFAULT_MAX_MATCHES)?;
    let threshold = wire::percent(input.face_match_threshold, "faceMatchThreshold", 80.0)?;
    let filter = QualityFilter::parse(&input.quality_filter, QualityFilter::None)?;
    let rec = call.state.store.collection(&id)?;
    model_check(&rec)?;
    let bytes = image.bytes("image")?;
    let (w, h, face, emb) = call
        .state
        .engine
        .run(move |e| {
            let picture = engine::decode(&bytes)?;
            let faces = engine::detect(e, &picture)?;
            let face = faces
                .into_iter()
                .find(|f| filter.reasons(f).is_empty())
                .ok_or_else(|| RekognitionError::invalid(NO_FACES))?;
            let emb = engine::embed(e, &picture, &face)?;
            Ok((picture.width(), picture.height(), face, emb))
        })
        .await?;
    let state = call.state.clone();
    let found = tokio::task::spawn_blocking(move || {
        state
            .collections
            .read::<_, RekognitionError>(&state.store, &rec, |loaded| {
                Ok(matches(
                    loaded,
                    &emb.0,
                    usize::try_from(k).unwrap_or(1),
                    threshold,
                    None,
                ))
            })
    })
    .await
    .map_err(|e| RekognitionError::InternalServerError(e.to_string()))??;
    Ok(json!({
        "SearchedFaceBoundingBox": bbox_json(bounding_box(&face.rect, w, h)),
        "SearchedFaceConfidence": face.confidence * 100.0,
        "FaceMatches": found,
        "FaceModelVersion": MODEL_VERSION,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DetectFacesInput {
    image: Option<ImageInput>,
    attributes: Option<Vec<String>>,
}

/// `DetectFaces`.
pub async fn detect_faces(call: RekCall) -> RekResult<Value> {
    let input: DetectFacesInput = call.input()?;
    let image = wire::required_image(&input.image, "image")?;
    wire::attributes(&input.attributes, "attributes")?;
    let (picture, faces) = analyse(&call, image, "image").await?;
    let (w, h) = (picture.width(), picture.height());
    Ok(json!({
        "FaceDetails": faces.iter().map(|f| face_detail(f, w, h)).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompareFacesInput {
    source_image: Option<ImageInput>,
    target_image: Option<ImageInput>,
    similarity_threshold: Option<f64>,
    quality_filter: Option<String>,
}

/// `CompareFaces`: the largest face of the source image against every face of the target.
pub async fn compare_faces(call: RekCall) -> RekResult<Value> {
    let input: CompareFacesInput = call.input()?;
    let source = wire::required_image(&input.source_image, "sourceImage")?.bytes("sourceImage")?;
    let target = wire::required_image(&input.target_image, "targetImage")?.bytes("targetImage")?;
    let threshold = wire::percent(input.similarity_threshold, "similarityThreshold", 80.0)?;
    let filter = QualityFilter::parse(&input.quality_filter, QualityFilter::None)?;
    call.state
        .engine
        .run(move |e| {
            let src = engine::decode(&source)?;
            let src_face = engine::detect(e, &src)?
                .into_iter()
                .find(|f| filter.reasons(f).is_empty())
                .ok_or_else(|| RekognitionError::invalid(format!("sourceImage: {NO_FACES}")))?;
            let src_emb = engine::embed(e, &src, &src_face)?;
            let tgt = engine::decode(&target)?;
            let mut tgt_faces = engine::detect(e, &tgt)?;
            tgt_faces.retain(|f| filter.reasons(f).is_empty());
            tgt_faces.truncate(MAX_FACES_PER_IMAGE);
            if tgt_faces.is_empty() {
                return Err(RekognitionError::invalid(format!(
                    "targetImage: {NO_FACES}"
                )));
            }
            let mut compared = Vec::with_capacity(tgt_faces.len());
            for f in tgt_faces {
                let emb = engine::embed(e, &tgt, &f)?;
                compared.push((vigil_faces::similarity(&src_emb, &emb), f));
            }
            let (sw, sh) = (src.width(), src.height());
            let (tw, th) = (tgt.width(), tgt.height());
            let source_face = json!({
                "BoundingBox": bbox_json(bounding_box(&src_face.rect, sw, sh)),
                "Confidence": src_face.confidence * 100.0,
            });
            compared.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut matched = Vec::new();
            let mut unmatched = Vec::new();
            for (s, f) in compared {
                if s >= threshold {
                    matched.push(json!({ "Similarity": s, "Face": face_detail(&f, tw, th) }));
                } else {
                    unmatched.push(face_detail(&f, tw, th));
                }
            }
            Ok(json!({
                "SourceImageFace": source_face,
                "FaceMatches": matched,
                "UnmatchedFaces": unmatched,
            }))
        })
        .await
}
