// The API reference: the vendored Swagger UI on this service's own OpenAPI document.
// An external file, not an inline script, so the page keeps the strict CSP.
window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#docs", persistAuthorization: false });
