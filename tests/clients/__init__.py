"""Real-client tests: sockjs-client 1.6.1 in Node and in headless Chromium through nginx."""
