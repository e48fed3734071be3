//! PLACEHOLDER (helper A replaces this file): cdp's model document.
