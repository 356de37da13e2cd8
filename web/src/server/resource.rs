//! The resource tree (Twisted's `IResource`): [`Resource`], [`Tree`],
//! [`FnResource`].

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use http::StatusCode;

use super::*;

/// A node of the site's tree (Twisted's `IResource`).
///
/// The site walks the request's path one segment at a time, asking each
/// resource for [`child`](Self::child), until the path is used up or a
/// resource says it [`is_leaf`](Self::is_leaf); that resource
/// [`render`](Self::render)s the request, with the unwalked segments in
/// [`Request::postpath`].
pub trait Resource: 'static {
    /// Renders the request (Twisted's `render`). The default is `405
    /// Method Not Allowed`.
    fn render(&self, request: Request) -> Reply {
        let _ = request;
        Response::error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into()
    }

    /// The child for one path segment (decoded), or `None` for `404`
    /// (Twisted's `getChildWithDefault`).
    fn child(&self, segment: &str, request: &Request) -> Option<Rc<dyn Resource>> {
        let _ = (segment, request);
        None
    }

    /// A leaf renders every path below it (Twisted's `isLeaf`).
    fn is_leaf(&self) -> bool {
        false
    }

    /// Where traversal goes on when [`child`](Self::child) has nothing
    /// for a segment: that resource continues with the segment still
    /// unwalked (a directory of files under a few named pages, say).
    /// `None` (the default) answers `404`.
    fn fallback(&self) -> Option<Rc<dyn Resource>> {
        None
    }
}

impl<R: Resource + ?Sized> Resource for Rc<R> {
    fn render(&self, request: Request) -> Reply {
        (**self).render(request)
    }
    fn child(&self, segment: &str, request: &Request) -> Option<Rc<dyn Resource>> {
        (**self).child(segment, request)
    }
    fn is_leaf(&self) -> bool {
        (**self).is_leaf()
    }
    fn fallback(&self) -> Option<Rc<dyn Resource>> {
        (**self).fallback()
    }
}

/// A resource with named children (Twisted's `Resource` with `putChild`),
/// and optionally a resource of its own for its exact path.
#[derive(Default)]
pub struct Tree {
    pub(super) children: HashMap<String, Rc<dyn Resource>>,
    pub(super) index: Option<Rc<dyn Resource>>,
    pub(super) fallback: Option<Rc<dyn Resource>>,
}

impl Tree {
    /// An empty tree: every path is `404`.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Adds a child at `segment` (Twisted's `putChild`).
    pub fn child(mut self, segment: &str, resource: impl Resource) -> Tree {
        self.children
            .insert(segment.to_owned(), Rc::new(resource) as Rc<dyn Resource>);
        self
    }

    /// Serves every path no child matches (and the tree's own path, if
    /// it has no index), as if mounted here: `Tree::new().child("api",
    /// api).fallback(File::new(dir))` serves files everywhere but `/api`.
    pub fn fallback(mut self, resource: impl Resource) -> Tree {
        self.fallback = Some(Rc::new(resource));
        self
    }

    /// What the tree's own path (and the same path with a trailing `/`)
    /// renders.
    pub fn index(mut self, resource: impl Resource) -> Tree {
        self.index = Some(Rc::new(resource));
        self
    }
}

impl Resource for Tree {
    fn render(&self, request: Request) -> Reply {
        match (&self.index, &self.fallback) {
            (Some(i), _) => i.render(request),
            (None, Some(f)) => f.render(request),
            (None, None) => Response::not_found().into(),
        }
    }

    fn child(&self, segment: &str, request: &Request) -> Option<Rc<dyn Resource>> {
        if let Some(c) = self.children.get(segment) {
            return Some(c.clone());
        }
        // "/dir/" ends with an empty segment: the directory itself.
        if segment.is_empty() && request.postpath.len() <= 1 && self.index.is_some() {
            return self.index.clone();
        }
        None
    }

    fn fallback(&self) -> Option<Rc<dyn Resource>> {
        self.fallback.clone()
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.children.keys().collect();
        names.sort();
        f.debug_struct("Tree")
            .field("children", &names)
            .field("index", &self.index.is_some())
            .finish()
    }
}

/// A resource from a function of the request.
///
/// ```
/// use braid_web::{FnResource, Response, Site, Tree};
///
/// let hello = FnResource::new(|_req| Response::text("hello\n"));
/// let files = FnResource::leaf(|req| {
///     Response::text(format!("asked for {}\n", req.postpath().join("/")))
/// });
/// let site = Site::new(Tree::new().child("hello", hello).child("files", files));
/// # let _ = site;
/// ```
pub struct FnResource<F> {
    pub(super) f: F,
    pub(super) leaf: bool,
}

impl<F, R> FnResource<F>
where
    F: Fn(Request) -> R + 'static,
    R: Into<Reply>,
{
    /// Renders its own path only (deeper paths are `404`).
    pub fn new(f: F) -> Self {
        FnResource { f, leaf: false }
    }

    /// Renders its path and every path below it.
    pub fn leaf(f: F) -> Self {
        FnResource { f, leaf: true }
    }
}

impl<F, R> Resource for FnResource<F>
where
    F: Fn(Request) -> R + 'static,
    R: Into<Reply>,
{
    fn render(&self, request: Request) -> Reply {
        (self.f)(request).into()
    }
    fn is_leaf(&self) -> bool {
        self.leaf
    }
}

impl<F> fmt::Debug for FnResource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnResource")
            .field("leaf", &self.leaf)
            .finish()
    }
}
